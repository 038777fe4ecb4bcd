"""The one folder where charseq keeps what it can rebuild or fetch again: data sets and compiled kernels.

    cache_root()            # $CHARSEQ_CACHE, else $XDG_CACHE_HOME/charseq, else ~/.cache/charseq
    cache_root("datasets")  # a subfolder of it (not created here)

Everything under it can be deleted at any time; charseq fetches or builds it again on next use.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "CHARSEQ_CACHE"


def cache_root(*parts: str) -> Path:
    """charseq's cache folder (or a subfolder of it), absolute, read from the environment on each call."""
    root = os.environ.get(ENV)
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "charseq")
    return Path(os.path.abspath(os.path.expanduser(root))).joinpath(*parts)
