"""The language model's settings: its shape and how the corpus becomes training windows, with their
defaults and bounds. No TensorFlow: the command line reads its defaults from here."""

from __future__ import annotations

from dataclasses import dataclass, field

from charseq.errors import CharseqError
from charseq.files import check_encoding, check_errors
from charseq.limits import check_number
from charseq.settings import TOKENIZERS, WINDOWS, BackboneConfig


@dataclass
class ModelConfig:
    """The language model's shape: the backbone alone (the output layer follows from the vocabulary).
    Settings not given are sized to the corpus (charseq.sizing)."""

    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig(layers=2, units=256, dropout=0.2))

    def validate(self) -> None:
        self.backbone.validate()
        if self.backbone.bidirectional:
            raise CharseqError("a language model reads one way (it predicts the next character); "
                               "bidirectional is for classifiers")


@dataclass
class DataConfig:
    """How the corpus becomes training windows."""

    seq_len: int = 100
    windows: str = "contiguous"  # contiguous: carry the RNN state across windows; random: char-rnn style
    val_fraction: float = 0.1
    tokenizer: str = "char"
    vocab_size: int = 4000  # SentencePiece only
    max_vocab: int | None = None
    min_count: int = 1
    encoding: str = "utf-8"
    errors: str = "strict"

    def validate(self) -> None:
        if self.seq_len < 1:
            raise CharseqError(f"--seq-len must be at least 1, not {self.seq_len}")
        if self.windows not in WINDOWS:
            raise CharseqError("--windows must be contiguous or random")
        check_number("val_fraction", self.val_fraction)
        if self.tokenizer not in TOKENIZERS:
            raise CharseqError("--tokenizer must be char or sentencepiece")
        if self.tokenizer == "sentencepiece":
            from charseq.vocab import check_piece_vocab_size  # here: charseq.vocab loads numpy, this module stays light

            check_piece_vocab_size(self.vocab_size)
        check_errors(self.errors)
        check_encoding(self.encoding)


SAMPLE_LENGTH = 200  # characters of sample text train_lm shows at each evaluation (0: none)


@dataclass(frozen=True)
class GenerateConfig:
    """What generation does unless told otherwise: the defaults of charseq.heads.lm.inference.Generator,
    beam.BeamSearch and inspect.LMProbe.stream (all read them from here), which `charseq generate --help` shows."""

    prompt: str = ""
    length: int = 200
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    num_samples: int = 1
    unknown: str = "error"  # a prompt character the model does not know: refused
    n_best: int = 1  # beam search: continuations printed
