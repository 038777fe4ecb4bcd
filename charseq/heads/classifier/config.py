"""The classifier's settings: its shape, and what its texts or images are read from, with their
defaults and bounds. No TensorFlow: the command line reads its defaults from here."""

from __future__ import annotations

from dataclasses import dataclass, field

from charseq.limits import check_val_fraction
from charseq.errors import CharseqError
from charseq.limits import check_number
from charseq.settings import ADDED_LATER, MAYBE_TEXT, PATH, READOUTS, TEXT, TOKENIZERS, BackboneConfig


@dataclass
class ModelConfig:
    """The classifier's shape and what it reads."""

    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig(units=128))
    readout: str = "final"  # final state, or mean/max/attention pooling over the outputs, or concat (see model.py)
    max_len: int | None = None  # texts: cut longer texts to this many characters
    augment_shift: int = 0  # images: shift each training image by up to this many pixels
    augment_rotate: float = 0.0  # images: and turn it by up to this many degrees (see augment.py)
    augment_scale: float = 0.0  # images: and scale it by a factor within 1 ± this
    augment_elastic: float = 0.0  # images: and bend it by a smooth random field of this many pixels
    char_noise: float = 0.0  # texts: delete or replace this fraction of each training text's characters
    label_smoothing: float = 0.0  # train towards 1 - this on the true class, the rest spread evenly

    def validate(self) -> None:
        self.backbone.validate()
        if self.readout not in READOUTS:
            raise CharseqError(f"--readout must be one of {', '.join(READOUTS)}, not {self.readout!r}")
        if self.max_len is not None and self.max_len < 1:
            raise CharseqError("--max-len must be at least 1")
        if self.augment_shift < 0:
            raise CharseqError("--augment-shift must be 0 or more")
        for name in ("augment_rotate", "augment_scale", "augment_elastic", "char_noise", "label_smoothing"):
            check_number(name, getattr(self, name))


@dataclass
class TextData:
    """How a text classifier reads its TSV/CSV files (config.json's "data", beside the training file)."""

    val: str | None = field(default=None, metadata=PATH)  # a validation file; None: hold out val_fraction
    val_fraction: float = 0.1
    text_column: str | None = None  # None: text, sentence, content or review
    label_column: str | None = None  # None: label
    skip_bad_rows: bool = False
    encoding: str = "utf-8"
    max_vocab: int | None = field(default=None, metadata=ADDED_LATER)
    min_count: int = field(default=1, metadata=ADDED_LATER)
    tokenizer: str = field(default="char", metadata=ADDED_LATER)
    vocab_size: int | None = field(default=4000, metadata=ADDED_LATER)  # SentencePiece only (recorded None otherwise)
    # Labels shown under other names ({"0": "negative", "1": "positive"}), in every file the run reads.
    label_names: dict[str, str] | None = field(default=None, metadata=ADDED_LATER)

    def validate(self) -> None:
        check_val_fraction(self.val_fraction)
        for label, name in (self.label_names or {}).items():
            if not label.strip() or not name.strip():
                raise CharseqError(f"--label-names gives an empty label or name ({label!r}={name!r})")
        if self.tokenizer not in TOKENIZERS:
            raise CharseqError(f"--tokenizer must be char or sentencepiece, not {self.tokenizer!r}")
        if self.tokenizer == "sentencepiece":
            from charseq.vocab import check_piece_vocab_size  # here: charseq.vocab loads numpy, this module stays light

            check_piece_vocab_size(self.vocab_size)


@dataclass
class ImageData:
    """How an image classifier holds out its validation images (config.json's "data", beside the set's path)."""

    val_fraction: float | None = field(default=None, metadata=ADDED_LATER)  # None: 5,000 of 60,000 (mnist_val_images)

    def validate(self) -> None:
        check_val_fraction(self.val_fraction)


# config.json's "data" besides the settings above: {key: (JSON types, required)}. Texts: the training file
# and how validation was held out; images: the set's path, where it came from, how many were held out.
TEXT_RECORDED = {"train": (TEXT, True), "split": (TEXT, False)}
IMAGES_RECORDED = {"path": (MAYBE_TEXT, True), "source": (TEXT, False), "val_images": ((int,), False)}


def reads_images(config: dict) -> bool:
    """Whether the classifier run recorded in `config` (its config.json) reads images, else texts."""
    return config.get("input") != "text"
