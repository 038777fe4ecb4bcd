"""The corpus on disk (memory-mapped ids) and the windows training reads from it."""

import numpy as np
import pytest

from charseq.data.corpus import Corpus, WindowSampler, encode_corpus, stream_batches
from charseq.errors import CharseqError
from charseq.files import read_text_chunks
from charseq.vocab import CharVocab


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
