"""A text corpus encoded once into a flat array of ids on disk, read back memory-mapped.

:func:`prepare_corpus` is the one path from a file to training data: read, count, vocabulary, encode.

As in nanoGPT's `prepare.py`, the corpus becomes ``ids.bin`` (uint16, or uint32 for a large
subword vocabulary) plus ``corpus.json``. Training reads windows from a `np.memmap`, so a
corpus larger than memory streams from disk and peak memory does not grow with its size.
The validation split is the last `val_fraction` of the ids.
"""

from __future__ import annotations

import json
import mmap
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from charseq.errors import CharseqError, WriteError
from charseq.files import STDIN, read_text_chunks, sync_file, write_json_atomic
from charseq.vocab import CharVocab, SentencePieceVocab, Vocab, count_characters, write_piece_training_text

IDS_FILE = "ids.bin"
CHUNK_CHARS = 1 << 20
META_FILE = "corpus.json"


@dataclass
class CorpusInfo:
    source: str
    tokens: int
    val_start: int
    dtype: str

    @property
    def train_tokens(self) -> int:
        return self.val_start

    @property
    def val_tokens(self) -> int:
        return self.tokens - self.val_start


def encode_corpus(chunks, vocab: Vocab, directory: str | Path, val_fraction: float,
                  source: str) -> CorpusInfo:
    """Encode text chunks with `vocab` into `directory/ids.bin`, streaming chunk by chunk."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    dtype = np.uint16 if vocab.size <= np.iinfo(np.uint16).max + 1 else np.uint32
    tmp = directory / (IDS_FILE + ".tmp")
    tokens = 0
    try:
        with open(tmp, "wb") as f:
            for chunk in chunks:
                ids = vocab.encode(chunk).astype(dtype)
                f.write(ids.tobytes())
                tokens += ids.size
            sync_file(f)
        tmp.replace(directory / IDS_FILE)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise WriteError(directory / IDS_FILE, e) from None
    val_tokens = int(round(tokens * val_fraction))
    info = CorpusInfo(source=source, tokens=tokens, val_start=tokens - val_tokens,
                      dtype=np.dtype(dtype).name)
    write_json_atomic(directory / META_FILE, asdict(info))
    return info


def corpus_files(folder: str | Path) -> list[Path]:
    """The files a corpus folder stands for: every .txt file in it and its subfolders, in order of
    their paths, hidden ones aside (char-rnn reads a folder's input.txt; Keras'
    text_dataset_from_directory a folder's .txt files)."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*.txt") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    if not files:
        raise CharseqError(f"corpus {folder} is a folder with no .txt file in it; give a text file, "
                           "or a folder of them")
    return files


def text_chunks(corpus: str | None, text: str | None, encoding: str, errors: str):
    """Chunks of the corpus file (or of every .txt file of a corpus folder, each ending its last
    line), or of a sample string given instead of a file."""
    if text is not None:
        return [text]
    # 1M characters a chunk: counting and encoding make temporaries of ~30 bytes a character,
    # so this bounds the extra peak memory of preparing any corpus at ~30 MB.
    if corpus is not None and str(corpus) != STDIN and Path(corpus).is_dir():
        return _folder_chunks(corpus_files(corpus), encoding, errors)
    return read_text_chunks(corpus, encoding=encoding, errors=errors, chunk_chars=CHUNK_CHARS)


def _folder_chunks(files: list[Path], encoding: str, errors: str):
    for path in files:
        last = ""
        for last in read_text_chunks(path, encoding=encoding, errors=errors, chunk_chars=CHUNK_CHARS):
            yield last
        if last and not last.endswith("\n"):  # the next file starts a line of its own
            yield "\n"


class Corpus:
    """The encoded corpus of a run: `train` and `val` are memory-mapped id arrays."""

    def __init__(self, directory: str | Path):
        directory = Path(directory)
        try:
            meta = json.loads((directory / META_FILE).read_text())
            self.info = CorpusInfo(**meta)
            self.ids = np.memmap(directory / IDS_FILE, dtype=self.info.dtype, mode="r",
                                 shape=(self.info.tokens,)) if self.info.tokens else np.zeros(0, np.uint16)
        except (OSError, ValueError, TypeError) as e:
            raise CharseqError(f"the encoded corpus in {directory} is missing or damaged ({e}); "
                               "start the run again") from None

    @property
    def train(self) -> np.ndarray:
        return self.ids[: self.info.val_start]

    @property
    def val(self) -> np.ndarray:
        return self.ids[self.info.val_start:]


class WindowSampler:
    """Batches of (inputs, targets) windows of `seq_len` from a flat id array.

    ``random``: each row starts at an independent random offset (the char-rnn way).
    ``contiguous``: the array is cut into `batch_size` parallel streams read front to back,
    so window k+1 of a row continues window k; the trainer carries the recurrent state
    across windows (truncated backpropagation through time), which lets the model use
    context longer than one window.

    The batch for a step is a pure function of (seed, step), so a resumed run sees exactly
    the batches an uninterrupted one would have.
    """

    def __init__(self, ids: np.ndarray, seq_len: int, batch_size: int, mode: str, seed: int):
        if mode not in ("random", "contiguous"):
            raise CharseqError(f"unknown window mode {mode!r}")
        self.ids, self.seq_len, self.batch_size, self.mode, self.seed = ids, seq_len, batch_size, mode, seed
        n = len(ids)
        if n < seq_len + 1:
            raise CharseqError(
                f"the training split has {n} tokens, fewer than one window of --seq-len {seq_len} + 1; "
                "use a longer corpus or a smaller --seq-len")
        if mode == "contiguous":
            self.stream_len = (n - 1) // batch_size
            self.windows_per_pass = self.stream_len // seq_len
            if self.windows_per_pass < 1:
                raise CharseqError(
                    f"the training split ({n} tokens) is too short for {batch_size} streams of "
                    f"--seq-len {seq_len}; lower --batch-size or --seq-len, or use --windows random")
        self.steps_per_epoch = max(1, (n - 1) // (seq_len * batch_size))
        self._mmap = _backing_mmap(ids) if hasattr(mmap, "MADV_DONTNEED") else None
        if self._mmap is not None:
            self._mmap.madvise(mmap.MADV_RANDOM)  # windows are scattered: no read-ahead
            # Where `ids` starts inside the mapping, to release each window's pages after reading.
            self._start = ids.ctypes.data - np.frombuffer(self._mmap, np.uint8).ctypes.data

    def starts_new_pass(self, step: int) -> bool:
        """True where the recurrent state must be reset (contiguous streams wrap around)."""
        return self.mode == "random" or step % self.windows_per_pass == 0

    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        t = self.seq_len
        if self.mode == "random":
            rng = np.random.default_rng([self.seed, step])
            starts = rng.integers(0, len(self.ids) - t, size=self.batch_size)
        else:
            k = step % self.windows_per_pass
            starts = np.arange(self.batch_size) * self.stream_len + k * t
        rows = np.stack([self._read(s, t + 1) for s in starts]).astype(np.int32)
        return rows[:, :-1], rows[:, 1:]

    def _read(self, start: int, length: int) -> np.ndarray:
        window = np.array(self.ids[start: start + length])
        if self._mmap is not None:
            # Unmap the pages just read (they stay in the page cache). Otherwise each one, and the
            # large page-cache folio around it, counts in the process's RSS until the corpus has
            # been read end to end, so peak memory would grow with the corpus.
            item = self.ids.itemsize
            lo = (self._start + start * item) // mmap.PAGESIZE * mmap.PAGESIZE
            hi = min(self._start + (start + length) * item, len(self._mmap))
            self._mmap.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
        return window


def _backing_mmap(ids) -> mmap.mmap | None:
    """The file mapping under a read-only `np.memmap` (or a slice of one), else None: only there
    is dropping pages harmless (a copy-on-write map would lose its changes)."""
    array = ids
    while isinstance(array, np.ndarray):
        if isinstance(array, np.memmap) and getattr(array, "mode", None) == "r" and isinstance(array.base, mmap.mmap):
            return array.base
        array = array.base
    return None


def stream_batches(ids: np.ndarray, streams: int, chunk: int):
    """Cut `ids` into `streams` parallel rows and yield (inputs, targets, weights) chunks.

    For evaluation: every token but the first of each row is predicted exactly once, with
    all of its row's earlier tokens as context (the caller carries the state across chunks).
    Short rows are right-padded with weight 0.
    """
    n = len(ids)
    streams = max(1, min(streams, n // max(2, chunk // 4) or 1))
    row_len = -(-n // streams)
    # Row r is ids[r * row_len: (r + 1) * row_len], zero-padded; each chunk reads only its own
    # slices, so a memory-mapped validation split is never loaded whole.
    for s in range(0, row_len - 1, chunk):
        e = min(s + chunk, row_len - 1)
        window = np.zeros((streams, e - s + 1), np.int32)
        valid = np.zeros((streams, e - s + 1), np.float32)
        for r in range(streams):
            lo, hi = r * row_len + s, min(r * row_len + e + 1, n)
            if lo < hi:
                window[r, : hi - lo] = ids[lo:hi]
                valid[r, : hi - lo] = 1.0
        yield window[:, :-1], window[:, 1:], valid[:, 1:]


def prepare_corpus(corpus: str | Path | None, text: str | None, directory: str | Path, val_fraction: float, *,
                   tokenizer: str = "char", vocab_size: int = 4000, max_vocab: int | None = None, min_count: int = 1,
                   encoding: str = "utf-8", errors: str = "strict",
                   vocab: Vocab | None = None) -> tuple[Vocab, CorpusInfo]:
    """The one way a corpus file (or a sample string, `text`) becomes training data: read it, count
    its characters (or train SentencePiece on it), build and save the vocabulary in `directory`,
    and encode it into `directory`/data (ids.bin, the last `val_fraction` held out). Checks
    everything that can be wrong with the corpus before training starts. Returns (vocab, info).
    A `vocab` given (a language model's, which this corpus fine-tunes) is used as it is."""
    directory = Path(directory)
    source = "<--text>" if text is not None else str(corpus)
    if vocab is not None:
        if not any(chunk for chunk in text_chunks(corpus, text, encoding, errors)):
            raise CharseqError(f"{source} is empty")
    elif tokenizer == "char":
        counts = count_characters(text_chunks(corpus, text, encoding, errors))
        if not counts:
            raise CharseqError(f"{source} is empty")
        vocab = CharVocab.build(counts, max_vocab=max_vocab, min_count=min_count)
    else:
        # SentencePiece learns from the text as it is read here (decoded, line ends "\n"), not from the
        # file: given the file itself, it kept a CRLF file's "\r" as a piece of its own.
        directory.mkdir(parents=True, exist_ok=True)
        sp_input = directory / "corpus.utf8.txt"
        if not write_piece_training_text(text_chunks(corpus, text, encoding, errors), sp_input):
            raise CharseqError(f"{source} is empty" if not sp_input.stat().st_size
                               else f"{source} has only empty lines: no text for SentencePiece to learn pieces from")
        vocab = SentencePieceVocab.train(sp_input, directory, vocab_size)
        sp_input.unlink()
    vocab.save(directory)
    info = encode_corpus(text_chunks(corpus, text, encoding, errors), vocab,
                         directory / "data", val_fraction, source)
    if info.train_tokens < 2:
        raise CharseqError(f"{source} has {info.train_tokens} training tokens; a language model needs at least 2")
    return vocab, info
