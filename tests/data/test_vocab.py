"""Vocabularies: characters (Chinese included), limits, SentencePiece, saving and loading."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charseq.errors import ArgumentTypeError, ArgumentValueError, CharseqError
from charseq.vocab import BOS, EOS, PAD, UNK, CharVocab, SentencePieceVocab, load_vocab

SAMPLE = "这是一个基于tensorflow的RNN短句子练习"


def test_vocab_from_a_sample_string_round_trips():
    vocab = CharVocab.build(SAMPLE)
    assert vocab.size == 4 + len(set(SAMPLE))
    ids = vocab.encode(SAMPLE)
    assert ids.min() >= 4 and UNK not in ids
    assert vocab.decode(ids) == SAMPLE


def test_reserved_ids_and_unknown_characters():
    vocab = CharVocab.build("aab")
    assert (PAD, UNK, BOS, EOS) == (0, 1, 2, 3)
    assert list(vocab.encode("abz")) == [4, 5, UNK]
    assert vocab.unknown("abzzy") == ["z", "y"]
    assert vocab.decode([PAD, 4, BOS, 5, EOS, UNK]) == "ab\ufffd"


def test_max_vocab_and_min_count_keep_the_frequent_characters():
    text = "a" * 10 + "b" * 5 + "c" * 2 + "d"
    assert CharVocab.build(text, max_vocab=6).chars == ["a", "b"]
    assert CharVocab.build(text, min_count=2).chars == ["a", "b", "c"]
    assert list(CharVocab.build(text, max_vocab=6).encode("cd")) == [UNK, UNK]
    with pytest.raises(CharseqError):
        CharVocab.build(text, max_vocab=3)


def test_saved_vocab_loads_back(tmp_path):
    vocab = CharVocab.build(SAMPLE + "\n")
    vocab.save(tmp_path)
    loaded = load_vocab(tmp_path)
    assert loaded.chars == vocab.chars
    assert not list(tmp_path.glob("*.tmp"))


def test_the_vocab_file_given_for_its_run_is_a_clear_error(tmp_path):
    CharVocab.build(SAMPLE).save(tmp_path)
    with pytest.raises(CharseqError, match="vocab.json is a file, not a charseq run directory"):
        load_vocab(tmp_path / "vocab.json")
    with pytest.raises(CharseqError, match="has no vocab.json"):
        load_vocab(tmp_path / "elsewhere")


def test_a_damaged_vocab_file_is_a_clear_error(tmp_path):
    (tmp_path / "vocab.json").write_text('{"kind": "char", "chars": [1, 2]}')
    with pytest.raises(CharseqError, match="not a charseq vocabulary"):
        load_vocab(tmp_path)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1))
def test_char_vocab_round_trips_any_unicode(text):
    """Arbitrary code points (emoji, combining marks, lone surrogates, NUL, CR/LF) survive."""
    vocab = CharVocab.build(text)
    assert vocab.decode(vocab.encode(text)) == text


def test_sentencepiece_vocab_same_interface(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(["the cat sat on the mat", "the dog sat on the log",
                                 "春风吹又生", "a cat and a dog"] * 50) + "\n", encoding="utf-8")
    vocab = SentencePieceVocab.train(corpus, tmp_path / "run", vocab_size=40)
    assert 20 < vocab.size <= 40
    text = "the cat sat\non the log\n"
    assert vocab.decode(vocab.encode(text)) == text
    vocab.save(tmp_path / "run")
    assert load_vocab(tmp_path / "run").encode(text).tolist() == vocab.encode(text).tolist()


def test_a_piece_vocabulary_smaller_than_the_text_s_characters_says_how_big_it_must_be(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(chr(0x4E00 + i) for i in range(200)) * 5 + "\n", encoding="utf-8")
    with pytest.raises(CharseqError) as e:
        SentencePieceVocab.train(corpus, tmp_path / "run", vocab_size=50)
    needed = int(re.search(r"--vocab-size (\d+) or more", str(e.value))[1])
    assert "character_coverage" not in str(e.value) and needed > 200
    assert SentencePieceVocab.train(corpus, tmp_path / "run", vocab_size=needed).size >= needed


def test_how_many_characters_each_id_stands_for(tmp_path):
    chars = CharVocab.build("abca").char_lengths()
    assert chars.tolist() == [0, 1, 0, 0, 1, 1, 1]  # unknown is one character too
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(["the cat sat on the mat", "春风吹又生", "a cat and a dog"] * 50) + "\n",
                      encoding="utf-8")
    vocab = SentencePieceVocab.train(corpus, tmp_path / "run", vocab_size=40)
    pieces = vocab.char_lengths()
    assert pieces[[PAD, BOS, EOS]].tolist() == [0, 0, 0] and pieces[UNK] == 1
    text = "the cat sat\non the mat\n"
    ids = vocab.encode(text)
    assert pieces[ids].sum() == len(text) and len(ids) < len(text)  # a space ("▁") and a newline are one each


def test_a_vocabulary_shows_its_size_and_characters():
    vocab = CharVocab.build("abracadabra")
    assert repr(vocab) == "CharVocab(size=9, chars='abrcd')" and len(vocab) == vocab.size == 9
    assert repr(CharVocab.build("".join(map(chr, range(0x4E00, 0x4E00 + 25))))).endswith("+ 5 more)")


def test_a_vocabulary_builds_from_a_list_of_texts_as_from_their_counts():
    texts = ["the cat", "a hat", "that"]
    assert CharVocab.build(texts).chars == CharVocab.build("".join(texts)).chars


@pytest.mark.parametrize("counts", [5, [1, 2], None, b"bytes"])
def test_a_vocabulary_built_from_the_wrong_type_says_what_it_takes(counts):
    with pytest.raises(ArgumentTypeError, match="counts must be a str, a list of str or a Counter"):
        CharVocab.build(counts)


def test_encoding_a_list_and_decoding_a_foreign_id_are_named_errors(tmp_path):
    for vocab in (CharVocab.build("abc"), SentencePieceVocab.from_texts(["abc def"] * 20, 12)):
        with pytest.raises(ArgumentTypeError, match=r"text must be str, not the list \['ab'\] \(one text at a time"):
            vocab.encode(["ab"])
        with pytest.raises(ArgumentValueError, match=f"id {vocab.size} is not in this vocabulary of {vocab.size} ids"):
            vocab.decode([4, vocab.size])
        with pytest.raises(ArgumentValueError, match="id -1 is not in this vocabulary"):
            vocab.token(-1)
