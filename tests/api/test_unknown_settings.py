"""A train function given a setting it does not have names it and what was probably meant: a near
name, or for Keras' `verbose`, the `log` it reports through. Nothing is written."""

import pytest

import charseq
from charseq.errors import CharseqError


@pytest.mark.parametrize("settings, said", [
    ({"unitz": 8}, "unknown settings: unitz (did you mean units?)"),
    ({"verbose": 0}, "unknown settings: verbose (a train function reports through log=; "
                     "log=lambda line: None trains without a word)"),
    ({"layer": 1, "xyzzy": 2}, "unknown settings: layer, xyzzy (layer: did you mean layers?)"),
])
def test_an_unknown_setting_says_what_was_meant(settings, said, files, tmp_path):
    for train, data in ((charseq.train_lm, files / "corpus.txt"), (charseq.train_seq2seq, files / "pairs.tsv")):
        with pytest.raises(CharseqError) as e:
            train(data, tmp_path / "run", **settings)
        assert str(e.value) == said
        assert not (tmp_path / "run").exists()
