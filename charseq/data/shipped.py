"""The small corpora that ship inside the package, so that the examples run wherever charseq is
installed, not only from a clone of the repository:

    SHIPPED["poems"].path    # <package>/corpora/poems.txt (corpora/poems.txt in a clone)

`charseq data path poems` prints the same path, and `charseq data list` shows them beside the data
sets charseq downloads. They are read in place: nothing is copied into the cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CORPORA_DIR = Path(__file__).resolve().parents[1] / "corpora"


@dataclass(frozen=True)
class ShippedCorpus:
    name: str
    file: str
    description: str

    @property
    def path(self) -> Path:
        return CORPORA_DIR / self.file


SHIPPED: dict[str, ShippedCorpus] = {c.name: c for c in (
    ShippedCorpus("poems", "poems.txt",
                  "323 original poems, Chinese five/seven-character verse and English (language model)"),
    ShippedCorpus("zh-en", "zh-en.tsv", "463 Chinese→English phrase pairs, source<TAB>target (encoder-decoder)"),
)}
