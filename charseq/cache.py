"""The one folder where charseq keeps what it can rebuild or fetch again: data sets and compiled kernels.

    cache_root()            # $CHARSEQ_CACHE, else $XDG_CACHE_HOME/charseq, else ~/.cache/charseq
    cache_root("datasets")  # a subfolder of it (not created here)
    cache_root_origin()     # which of the three chose it, for saying so

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


def cache_root_origin() -> str:
    """What chose the cache folder, as `charseq data list` says it: the variable that set it, or that
    it is the default (so that a user who copies the folder knows what to point CHARSEQ_CACHE at)."""
    if os.environ.get(ENV):
        return ENV
    if os.environ.get("XDG_CACHE_HOME"):
        return "XDG_CACHE_HOME/charseq"
    return f"the default; {ENV} moves it"
