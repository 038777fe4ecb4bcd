"""The encoder-decoder's settings: its shape, and how it reads its pairs, with their defaults and
bounds. No TensorFlow: the command line reads its defaults from here."""

from __future__ import annotations

from dataclasses import dataclass, field

from charseq.limits import check_val_fraction
from charseq.errors import CharseqError
from charseq.settings import ATTENTIONS, PATH, TEXT, BackboneConfig

# Decoding counts its steps in int32; past this, an output is minutes of decoding (generate's --length bound).
MAX_OUTPUT_LEN = 1_000_000
# Every hypothesis carries a copy of the source's encoder outputs and of the decoder state.
MAX_BEAM = 1_000


@dataclass
class ModelConfig:
    """The encoder-decoder's shape and how it reads its pairs."""

    backbone: BackboneConfig = field(default_factory=BackboneConfig)  # the encoder's and the decoder's
    attention: str = "luong"
    reverse_source: bool = False  # read the source backwards (Sutskever et al.'s trick for LSTMs)
    max_output_len: int | None = None  # decoding limit; default: 2x the longest training target + 10

    def validate(self) -> None:
        self.backbone.validate()
        if self.backbone.bidirectional:
            raise CharseqError("an encoder-decoder's backbones read one way (the decoder starts from the encoder's "
                               "final state); bidirectional is for classifiers")
        if self.attention not in ATTENTIONS:
            raise CharseqError(f"--attention must be one of {', '.join(ATTENTIONS)}")
        if self.max_output_len is not None and not 1 <= self.max_output_len <= MAX_OUTPUT_LEN:
            raise CharseqError(f"--max-output-len must be between 1 and {MAX_OUTPUT_LEN:,}, not {self.max_output_len}")


@dataclass
class DataConfig:
    """How an encoder-decoder reads its source<TAB>target files (config.json's "data", beside the training file)."""

    val: str | None = field(default=None, metadata=PATH)  # a validation file; None: hold out val_fraction
    val_fraction: float = 0.1
    shared_vocab: bool = False  # one vocabulary for source and target
    skip_bad_rows: bool = False
    max_input_len: int | None = None  # longest source accepted (longer: an error, or skipped with skip_long)
    skip_long: bool = False
    encoding: str = "utf-8"

    def validate(self) -> None:
        check_val_fraction(self.val_fraction)
        if self.max_input_len is not None and self.max_input_len < 1:
            raise CharseqError("--max-input-len must be at least 1")


@dataclass(frozen=True)
class DecodeConfig:
    """How a trained encoder-decoder decodes unless told otherwise (translate, evaluate)."""

    beam: int = 1  # 1: greedy
    n_best: int = 1  # hypotheses returned per source
    length_penalty: float = 1.0  # rank by log-probability / length**this
    unknown: str = "error"  # a source character the model does not know: refused (or "unk")


DECODE = DecodeConfig()

# config.json's "data" besides DataConfig's settings: the training file, how validation was held out, and
# whether the training file's first line was read as a header (absent: as a pair, as runs before did).
RECORDED = {"train": (TEXT, True), "split": (TEXT, False), "header": ((bool,), False)}
