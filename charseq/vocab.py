"""Vocabularies: characters (Unicode code points) or SentencePiece subwords, one interface.

Every vocabulary reserves the same four ids so that every head can rely on them:
``0`` padding, ``1`` unknown, ``2`` start of sequence, ``3`` end of sequence.
A vocabulary is saved with its run as ``vocab.json`` (plus ``spm.model`` for SentencePiece)
and loaded back with :func:`load_vocab`.
"""

from __future__ import annotations

import collections
import collections.abc
import json
import re
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

from charseq.errors import ArgumentTypeError, ArgumentValueError, CharseqError
from charseq.files import write_bytes_atomic, write_json_atomic

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIALS = ("<pad>", "<unk>", "<s>", "</s>")
# The fewest SentencePiece pieces asked for: the specials and the newline leave room for only a
# few characters below this, and SentencePiece's own refusal would come after the corpus is read.
MIN_PIECES = 2 * len(SPECIALS)
VOCAB_FILE = "vocab.json"
SPM_FILE = "spm.model"
# SentencePiece skips a line of more than this many bytes (its max_sentence_length), so a corpus of long
# lines (a paragraph a line, or no line break at all) left it only its short lines to learn from, or
# none: lines are cut for it into parts of at most SPM_LINE_CHARS characters, which fit in any UTF-8.
SPM_LINE_BYTES = 4192
SPM_LINE_CHARS = SPM_LINE_BYTES // 4


def check_piece_vocab_size(vocab_size: int) -> None:
    """A one-line error for a --vocab-size too small to be a SentencePiece vocabulary."""
    if vocab_size < MIN_PIECES:
        raise CharseqError(f"--vocab-size must be at least {MIN_PIECES}, not {vocab_size}")


def character_bound(data) -> str | None:
    """The option that bounds a vocabulary of characters which `data` (a head's data settings) sets:
    --max-vocab, --min-count, or None."""
    if data.max_vocab is not None:
        return "--max-vocab"
    return "--min-count" if data.min_count != type(data).min_count else None


def refuse_the_other_tokenizers_options(data, given: dict) -> None:
    """Each tokenizer has its own vocabulary options: `data` (a head's data settings, `given` the
    settings as the user gave them) with the other's is refused, not trained without a word about them."""
    if data.tokenizer == "char" and given.get("vocab_size") is not None:
        raise CharseqError("--vocab-size is the size of a SentencePiece vocabulary (--tokenizer sentencepiece); "
                           "a vocabulary of characters is bounded by --max-vocab and --min-count")
    if data.tokenizer != "char" and character_bound(data):
        raise CharseqError(f"{character_bound(data)} bounds a vocabulary of characters; a SentencePiece "
                           "vocabulary's size is --vocab-size")


def write_piece_training_text(chunks: Iterable[str], path: str | Path) -> int:
    """Write text (in chunks, lines ending in "\\n") as the input SentencePiece trains on: UTF-8, each
    line cut into parts of at most SPM_LINE_CHARS characters. Returns how many characters it has
    besides the line ends (SentencePiece skips empty lines: with none, it has nothing to learn from)."""
    def cut(line: str) -> str:
        if len(line) <= SPM_LINE_CHARS:
            return line
        return "\n".join(line[i:i + SPM_LINE_CHARS] for i in range(0, len(line), SPM_LINE_CHARS))

    text_chars, tail = 0, ""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for chunk in chunks:
            text_chars += len(chunk) - chunk.count("\n")
            *lines, tail = (tail + chunk).split("\n")
            whole = len(tail) - len(tail) % SPM_LINE_CHARS  # the parts of a long unfinished line cut so far
            if whole:
                lines.append(tail[:whole])
                tail = tail[whole:]
            if lines:
                f.write("\n".join(map(cut, lines)) + "\n")
        f.write(cut(tail))
    return text_chars


def _code_points(text: str) -> np.ndarray:
    """The text as an array of Unicode code points, without a Python-level loop."""
    return np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32)


def count_characters(chunks: Iterable[str]) -> collections.Counter:
    """Character frequencies over an iterable of text chunks (streams a large corpus)."""
    counts: collections.Counter = collections.Counter()
    for chunk in chunks:
        codes, freq = np.unique(_code_points(chunk), return_counts=True)
        for code, n in zip(codes.tolist(), freq.tolist()):
            counts[chr(code)] += n
    return counts


def banned_ids(size: int, allow: tuple[int, ...] = ()) -> np.ndarray:
    """Added to logits over a vocabulary of `size`: -inf at the reserved ids (padding, unknown, start,
    end) a model must never emit, except those in `allow`; 0 elsewhere.

    >>> banned_ids(6).tolist(), banned_ids(6, allow=(EOS,)).tolist()
    ([-inf, -inf, -inf, -inf, 0.0, 0.0], [-inf, -inf, -inf, 0.0, 0.0, 0.0])
    """
    banned = np.zeros(size, np.float32)
    banned[[i for i in range(len(SPECIALS)) if i not in allow]] = -np.inf
    return banned


def quoted_characters(chars: list[str], most: int = 10) -> str:
    """Up to `most` of `chars`, each quoted, as messages name the characters a vocabulary lacks.

    >>> quoted_characters(["x", "☃"])
    "'x' '☃'"
    """
    return " ".join(map(repr, chars[:most])) + (" ..." if len(chars) > most else "")


def line_ends_as_read(vocab, text: str) -> str:
    """`text` with Windows (\\r\\n) and old Mac (\\r) line ends as \\n, as a corpus file is read, where
    `vocab` has no \\r: a prompt pasted from a Windows file is the text the model knows.

    >>> line_ends_as_read(CharVocab.build("a\\nb"), "a\\r\\nb\\r")
    'a\\nb\\n'
    """
    if "\r" not in text or not vocab.unknown("\r"):
        return text
    return text.replace("\r\n", "\n").replace("\r", "\n")


def refuse_unknown(vocab, text: str, what: str, whose: str, *remedies: str) -> None:
    """A one-line error if `text` has characters `vocab` does not have, naming up to ten of them;
    `what` is the text as the message names it, `whose` the vocabulary, `remedies` the options that help.

    >>> refuse_unknown(CharVocab.build("abc"), "abx", "the prompt", "the model's vocabulary", "--unknown unk")
    Traceback (most recent call last):
    ...
    charseq.errors.CharseqError: the prompt has characters the model's vocabulary does not have: 'x' (use --unknown unk)
    """
    missing = vocab.unknown(text)
    if missing:
        raise CharseqError(f"{what} has characters {whose} does not have: {quoted_characters(missing)}", *remedies)


def _shown(value) -> str:
    return f"the {type(value).__name__} {value!r:.60}"


def _check_text(text) -> None:
    """A vocabulary encodes one text at a time: anything else is named, not an AttributeError deep inside."""
    if not isinstance(text, str):
        hint = " (one text at a time: [vocab.encode(t) for t in texts])" if isinstance(text, (list, tuple)) else ""
        raise ArgumentTypeError(f"text must be str, not {_shown(text)}{hint}")


def _checked_id(i, size: int) -> int:
    """`i` as an int, or a one-line error if it is not an id of a vocabulary of `size` (an id from
    another vocabulary or model, say), rather than an IndexError."""
    i = int(i)
    if not 0 <= i < size:
        raise ArgumentValueError(f"id {i} is not in this vocabulary of {size:,} ids (0 to {size - 1:,}); "
                                 "decode with the vocabulary of the model that made the ids")
    return i


class CharVocab:
    """Characters to ids. Rare characters (by `min_count` / `max_vocab`) map to unknown.

    Ids 0 to 3 are reserved (padding, unknown, start, end), the characters follow; `vocab.size` (or
    `len(vocab)`) counts them all, as the `vocab_size` of a backbone reading these ids.
    """

    kind = "char"
    pad_id, unk_id, bos_id, eos_id = PAD, UNK, BOS, EOS

    def __init__(self, chars: Iterable[str]):
        self.chars = list(chars)
        if len(set(self.chars)) != len(self.chars) or any(len(c) != 1 for c in self.chars):
            raise CharseqError("vocabulary must list distinct single characters")
        self._id_of = {c: i + len(SPECIALS) for i, c in enumerate(self.chars)}
        # Sorted code points and their ids, for vectorised encoding with searchsorted.
        codes = np.array([ord(c) for c in self.chars], dtype=np.uint32)
        order = np.argsort(codes)
        self._sorted_codes = codes[order]
        self._sorted_ids = (order + len(SPECIALS)).astype(np.int32)
        self._tokens = list(SPECIALS) + self.chars

    @classmethod
    def build(cls, counts: collections.Counter | str | Iterable[str], max_vocab: int | None = None,
              min_count: int = 1) -> "CharVocab":
        """A vocabulary from `counts`: a Counter of characters, or directly a sample string or a list
        of texts (as Keras' `TextVectorization.adapt` takes them).

        Characters are ordered by frequency (ties by code point), so `max_vocab` keeps
        the most frequent ones; `max_vocab` counts the four reserved ids too. Characters seen
        fewer than `min_count` times are left out (read as unknown).

        >>> vocab = CharVocab.build("abracadabra")
        >>> vocab.chars, vocab.size
        (['a', 'b', 'r', 'c', 'd'], 9)
        >>> ids = vocab.encode("cab!")
        >>> ids.tolist(), vocab.decode(ids)
        ([7, 4, 5, 1], 'cab\ufffd')
        """
        if isinstance(counts, str):
            counts = count_characters([counts])
        elif not isinstance(counts, collections.abc.Mapping):
            texts = list(counts) if isinstance(counts, collections.abc.Iterable) else None
            if texts is None or not all(isinstance(t, str) for t in texts):
                raise ArgumentTypeError(f"counts must be a str, a list of str or a Counter of characters, "
                                        f"not {_shown(counts)}")
            counts = count_characters(texts)
        if min_count < 1:
            raise CharseqError("--min-count must be at least 1")
        if max_vocab is not None and max_vocab <= len(SPECIALS):
            raise CharseqError(f"--max-vocab must be more than {len(SPECIALS)} (the reserved ids)")
        kept = [c for c, n in counts.items() if n >= min_count]
        kept.sort(key=lambda c: (-counts[c], ord(c)))
        if max_vocab is not None:
            kept = kept[: max_vocab - len(SPECIALS)]
        if not kept:
            raise CharseqError("no character occurs often enough to build a vocabulary")
        return cls(kept)

    @property
    def size(self) -> int:
        """How many ids there are: the four reserved ones and one for each character."""
        return len(self._tokens)

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        shown = "".join(self.chars[:20])
        more = f" + {len(self.chars) - 20:,} more" if len(self.chars) > 20 else ""
        return f"CharVocab(size={self.size:,}, chars={shown!r}{more})"

    def encode(self, text: str) -> np.ndarray:
        """Ids of each character of `text`; characters outside the vocabulary become unknown."""
        _check_text(text)
        codes = _code_points(text)
        if codes.size == 0:
            return np.zeros(0, dtype=np.int32)
        pos = np.searchsorted(self._sorted_codes, codes)
        pos = np.minimum(pos, len(self._sorted_codes) - 1)
        found = self._sorted_codes[pos] == codes
        return np.where(found, self._sorted_ids[pos], UNK).astype(np.int32)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of the `ids`, leaving out padding and start/end symbols (unknown shows as U+FFFD)."""
        out = []
        for i in ids:
            i = _checked_id(i, self.size)
            if i >= len(SPECIALS):
                out.append(self._tokens[i])
            elif i == UNK:
                out.append("\ufffd")
        return "".join(out)

    def token(self, i: int) -> str:
        """The character (or reserved symbol, such as "<pad>") of id `i`."""
        return self._tokens[_checked_id(i, self.size)]

    def char_lengths(self) -> np.ndarray:
        """How many characters of text each id stands for: 1, and 0 for padding, start and end."""
        lengths = np.ones(self.size, np.int64)
        lengths[[PAD, BOS, EOS]] = 0
        return lengths

    def unknown(self, text: str) -> list[str]:
        """The distinct characters of `text` that the vocabulary does not have, in order of appearance."""
        return list(dict.fromkeys(c for c in text if c not in self._id_of))

    def to_json(self) -> dict:
        """The vocabulary as its run's vocab.json holds it."""
        return {"kind": self.kind, "specials": list(SPECIALS), "chars": self.chars}

    def save(self, directory: str | Path) -> None:
        """Write vocab.json into `directory` (a run's), which :func:`load_vocab` reads back."""
        write_json_atomic(Path(directory) / VOCAB_FILE, self.to_json())


class SentencePieceVocab:
    """Subword pieces trained with SentencePiece; same interface as :class:`CharVocab`.

    Newlines are a piece of their own (SentencePiece reads text line by line and would
    otherwise drop them), so encode/decode round-trips multi-line text.
    """

    kind = "sentencepiece"
    pad_id, unk_id, bos_id, eos_id = PAD, UNK, BOS, EOS

    def __init__(self, model_path: str | Path):
        import sentencepiece as spm

        self.model_path = Path(model_path)
        try:
            self._sp = spm.SentencePieceProcessor(model_file=str(self.model_path))
        except (OSError, RuntimeError) as e:
            raise CharseqError(f"cannot read SentencePiece model {self.model_path}: {e}") from None
        self._newline = self._sp.piece_to_id("\n")

    @classmethod
    def train(cls, corpus: str | Path, directory: str | Path, vocab_size: int,
              encoding: str = "utf-8", texts_apart: bool = False) -> "SentencePieceVocab":
        """Train a unigram SentencePiece model on `corpus` and save it in `directory`. With
        `texts_apart` (separate texts, one per line), every line begins a word, so that a text's
        first word is cut into the pieces it would have mid-sentence."""
        import sentencepiece as spm

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        prefix = directory / "spm"
        try:
            spm.SentencePieceTrainer.train(
                input=str(corpus), model_prefix=str(prefix), vocab_size=vocab_size,
                model_type="unigram", character_coverage=0.9995,
                pad_id=PAD, unk_id=UNK, bos_id=BOS, eos_id=EOS,
                user_defined_symbols=["\n"], normalization_rule_name="identity",
                remove_extra_whitespaces=False, input_sentence_size=2_000_000,
                shuffle_input_sentence=True, max_sentence_length=SPM_LINE_BYTES, minloglevel=2,
                hard_vocab_limit=False,
                # A running text: else a line after a newline would decode with a leading space.
                add_dummy_prefix=texts_apart,
            )
        except RuntimeError as e:
            msg = str(e).splitlines()[-1] if str(e) else "training failed"
            # Its own advice names its own flags (--character_coverage); say what charseq's user can do.
            needed = re.search(r"smaller than required_chars\. \d+ vs (\d+)", msg)
            if needed:
                raise CharseqError(f"a vocabulary of {vocab_size} pieces is too small for this text: SentencePiece "
                                   f"keeps each of its characters as a piece, which takes {int(needed[1]):,}",
                                   f"--vocab-size {needed[1]} or more") from None
            raise CharseqError(f"SentencePiece could not build a vocabulary of {vocab_size}: {msg}") from None
        (directory / "spm.vocab").unlink(missing_ok=True)
        return cls(directory / SPM_FILE)

    @classmethod
    def from_texts(cls, texts: list[str], vocab_size: int) -> "SentencePieceVocab":
        """Pieces of separate texts (a classifier's), trained in a temporary directory; the model
        stays in memory until :meth:`save` writes it into a run."""
        with tempfile.TemporaryDirectory(prefix="charseq-spm-") as scratch:
            lines = Path(scratch) / "texts.txt"
            write_piece_training_text(["\n".join(t.replace("\n", " ") for t in texts)], lines)
            return cls.train(lines, scratch, vocab_size, texts_apart=True)

    @property
    def size(self) -> int:
        """How many ids there are: the four reserved ones and one for each piece."""
        return self._sp.get_piece_size()

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"SentencePieceVocab(size={self.size:,}, model={str(self.model_path)!r})"

    def encode(self, text: str) -> np.ndarray:
        """Ids of the pieces of `text`, newlines included."""
        _check_text(text)
        ids: list[int] = []
        lines = text.split("\n")
        for n, line in enumerate(lines):
            if line:
                ids.extend(self._sp.encode(line))
            if n < len(lines) - 1:
                ids.append(self._newline)
        return np.asarray(ids, dtype=np.int32)

    def encode_counted(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """`encode(text)`, and how many characters of `text` each piece stands for: one unknown
        piece stands for a whole run of characters the model lacks, which `char_lengths` counts
        as one."""
        ids, chars = [], []
        lines = text.split("\n")
        for n, line in enumerate(lines):
            if line:  # as text, an unknown piece is the characters it stands for
                ids.extend(self._sp.encode(line))
                chars.extend(map(len, self._sp.encode(line, out_type=str)))
            if n < len(lines) - 1:
                ids.append(self._newline)
                chars.append(1)
        return np.asarray(ids, dtype=np.int32), np.asarray(chars, dtype=np.int32)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of the `ids`, leaving out padding and start/end symbols."""
        ids = [i for i in (_checked_id(i, self.size) for i in ids) if i not in (PAD, BOS, EOS)]
        return self._sp.decode(ids)

    def token(self, i: int) -> str:
        """The piece of id `i` ("▁" stands for a space)."""
        return self._sp.id_to_piece(_checked_id(i, self.size))

    def char_lengths(self) -> np.ndarray:
        """How many characters of text each id stands for: its piece's length ("▁", a space, is one
        character, and so is the newline piece), 0 for padding, start and end. Unknown counts as one,
        though SentencePiece reads a run of unknown characters as one unknown piece: where the text
        is at hand, `encode_counted` counts them."""
        sp = self._sp
        return np.array([0 if sp.is_control(i) else 1 if sp.is_unknown(i) else len(sp.id_to_piece(i))
                         for i in range(self.size)], np.int64)

    def unknown(self, text: str) -> list[str]:
        return list(dict.fromkeys(c for c in text if c != "\n" and self._sp.encode(c) == [UNK]))

    def to_json(self) -> dict:
        return {"kind": self.kind, "model": SPM_FILE, "size": self.size}

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        target = directory / SPM_FILE
        if self.model_path.resolve() != target.resolve():  # from the loaded model: its file may be gone
            write_bytes_atomic(target, self._sp.serialized_model_proto())
        write_json_atomic(directory / VOCAB_FILE, self.to_json())


Vocab = CharVocab | SentencePieceVocab


def load_vocab(directory: str | Path) -> Vocab:
    """The vocabulary saved in the run directory `directory` (a :class:`CharVocab` or a
    :class:`SentencePieceVocab`)."""
    path = Path(directory) / VOCAB_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except NotADirectoryError:  # the run's vocab.json itself, say
        raise CharseqError(f"{directory} is a file, not a charseq run directory") from None
    except FileNotFoundError:
        raise CharseqError(f"{directory} has no {VOCAB_FILE}: not a charseq run directory") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise CharseqError(f"{path} is not valid JSON ({e})") from None
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind == "char" and isinstance(data.get("chars"), list) and all(isinstance(c, str) for c in data["chars"]):
        return CharVocab(data["chars"])
    if kind == "sentencepiece":
        return SentencePieceVocab(Path(directory) / SPM_FILE)
    raise CharseqError(f"{path} is not a charseq vocabulary")
