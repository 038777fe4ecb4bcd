"""The corpus on disk (memory-mapped ids) and the windows training reads from it."""

import numpy as np
import pytest

from charseq.data.corpus import Corpus, WindowSampler, encode_corpus, prepare_corpus, stream_batches
from charseq.errors import CharseqError
from charseq.files import read_text_chunks
from charseq.vocab import SPM_LINE_CHARS, CharVocab, write_piece_training_text

WORDS = "the river runs to the sea and the sea runs to the sky".split()


def test_corpus_is_encoded_in_chunks_to_a_memory_map(tmp_path):
    text = "abcdefghij" * 100
    vocab = CharVocab.build(text)
    info = encode_corpus([text[:333], text[333:]], vocab, tmp_path, val_fraction=0.1, source="x")
    corpus = Corpus(tmp_path)
    assert isinstance(corpus.ids, np.memmap) and info.tokens == 1000 and len(corpus.val) == 100
    assert vocab.decode(corpus.train) + vocab.decode(corpus.val) == text


def test_reading_a_large_file_in_small_chunks_keeps_multibyte_characters(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("春风吹\r\n又生" * 100, encoding="utf-8")
    chunks = list(read_text_chunks(path, chunk_chars=7))
    assert len(chunks) > 10 and "".join(chunks) == "春风吹\n又生" * 100


def test_random_windows_are_a_function_of_seed_and_step():
    ids = np.arange(1000) % 50
    a = WindowSampler(ids, 20, 4, "random", seed=3)
    b = WindowSampler(ids, 20, 4, "random", seed=3)
    x1, y1 = a.batch(7)
    np.testing.assert_array_equal(x1, b.batch(7)[0])
    np.testing.assert_array_equal(x1[:, 1:], y1[:, :-1])
    assert not np.array_equal(x1, a.batch(8)[0])


def test_contiguous_windows_continue_each_stream():
    ids = np.arange(1001)
    sampler = WindowSampler(ids, 10, 4, "contiguous", seed=0)
    x0, y0 = sampler.batch(0)
    x1, _ = sampler.batch(1)
    np.testing.assert_array_equal(x1[:, 0], y0[:, -1])  # window k+1 starts where window k ended
    assert sampler.starts_new_pass(0) and not sampler.starts_new_pass(1)
    assert sampler.starts_new_pass(sampler.windows_per_pass)


def test_a_corpus_shorter_than_one_window_is_refused():
    with pytest.raises(CharseqError, match="fewer than one window"):
        WindowSampler(np.arange(10), 20, 2, "random", 0)


def test_evaluation_streams_score_every_token_but_the_first_of_each_stream_once():
    ids = np.arange(1, 1001)
    seen = []
    for x, y, w in stream_batches(ids, streams=4, chunk=64):
        seen.extend(y[w > 0].tolist())
        np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    assert len(seen) == len(set(seen)) == 1000 - 4


def test_an_unknown_decoding_policy_is_refused_by_name(tmp_path):
    from charseq.files import read_text

    (tmp_path / "a.txt").write_text("some text\n")
    with pytest.raises(CharseqError, match="--errors must be one of strict, replace, ignore, not 'nope'"):
        read_text(tmp_path / "a.txt", errors="nope")


def word_lines(lines: int, words: int) -> list[str]:
    """`lines` lines of `words` words each, the same every time."""
    return [" ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(words)) for i in range(lines)]


def pieces_of(corpus, directory, vocab_size=40, **options) -> list[str]:
    vocab, _ = prepare_corpus(corpus, None, directory, 0.1, tokenizer="sentencepiece", vocab_size=vocab_size,
                              **options)
    return [vocab.token(i) for i in range(vocab.size)]


def test_a_crlf_corpus_has_the_pieces_of_the_same_text_with_lf(tmp_path):
    """Read as "\n" for the model, a CRLF file's "\r" took a piece of the vocabulary of its own."""
    text = "\n".join(word_lines(300, 6)) + "\n"
    (tmp_path / "lf.txt").write_bytes(text.encode())
    (tmp_path / "crlf.txt").write_bytes(text.replace("\n", "\r\n").encode())
    pieces = pieces_of(tmp_path / "lf.txt", tmp_path / "lf")
    assert pieces_of(tmp_path / "crlf.txt", tmp_path / "crlf") == pieces and "\r" not in pieces


def test_a_corpus_of_long_lines_learns_pieces_from_all_of_them(tmp_path):
    """SentencePiece skips lines too long for it: a corpus on one line was an internal error of
    SentencePiece's, and one of long paragraphs learnt only from its short lines."""
    (tmp_path / "one-line.txt").write_text(" ".join(word_lines(1, 3000)), encoding="utf-8")
    assert "▁river" in pieces_of(tmp_path / "one-line.txt", tmp_path / "one")
    paragraph = " ".join(["a fox jumped over lazy dogs"] * 300)  # their words in long lines only
    (tmp_path / "mixed.txt").write_text("\n".join(word_lines(50, 6) + [paragraph] * 20), encoding="utf-8")
    assert "▁jumped" in pieces_of(tmp_path / "mixed.txt", tmp_path / "mixed")


def test_a_corpus_of_empty_lines_is_a_clear_error_for_sentencepiece(tmp_path):
    (tmp_path / "lines.txt").write_text("\n\n\n")
    with pytest.raises(CharseqError, match="has only empty lines"):
        pieces_of(tmp_path / "lines.txt", tmp_path / "run")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(CharseqError, match="is empty"):
        pieces_of(tmp_path / "empty.txt", tmp_path / "run")


def test_sentencepiece_input_is_the_text_in_lines_it_reads_whole(tmp_path):
    text = "short\n" + "x" * (2 * SPM_LINE_CHARS + 5) + "\n\nend" + "y" * SPM_LINE_CHARS
    for size in (1, 7, SPM_LINE_CHARS, len(text)):
        path = tmp_path / f"input-{size}.txt"
        chars = write_piece_training_text([text[i:i + size] for i in range(0, len(text), size)], path)
        lines = path.read_text(encoding="utf-8").split("\n")
        assert "".join(lines) == text.replace("\n", "") and chars == len(text) - 3
        assert max(map(len, lines)) == SPM_LINE_CHARS and lines[:2] == ["short", "x" * SPM_LINE_CHARS]
