"""A language model given another run's vocabulary is refused with one line saying so, not with the
shape error TensorFlow would raise from inside the first compiled step."""

import pytest

import charseq
from charseq.errors import CharseqError
from charseq.vocab import CharVocab


def test_generate_refuses_a_vocabulary_of_another_size(trained_run):
    model, vocab, _ = charseq.load_lm(trained_run)
    other = CharVocab.build("abc")
    assert other.size != vocab.size
    for call in (lambda: charseq.generate(model, other, prompt="a", length=3),
                 lambda: charseq.Generator(model, other)):
        with pytest.raises(CharseqError, match=rf"the vocabulary has {other.size} tokens but the model reads "
                                               rf"{vocab.size}; give the vocabulary of the model's own run"):
            call()
    assert charseq.generate(model, vocab, length=3, seed=0)  # its own vocabulary still works
