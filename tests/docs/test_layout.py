"""The architecture page's Layout block lists every module of charseq/, in every folder (a new one
fails here until it is listed), and nothing that is gone."""

import re

from helpers import REPO

PACKAGE = REPO / "charseq"
MODULES = {".py", ".cc", ".h", ".js"}  # source files; a folder line covers its page assets (.html, .css, ...)
# A file with its extension, or a folder ending in /; "tf.distribute" in a description is neither.
PATH = re.compile(r"^[\w.-]+(/[\w.-]+)*(/|\.(py|cc|h|js|css|html|svg|md|txt|tsv|json|sh|toml|yml))$")


def layout_block() -> str:
    page = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    return re.search(r"^## Layout\n\n```\n(.*?)^```", page, re.S | re.M).group(1)


def listed_paths(block: str) -> set[str]:
    """The paths the block names, relative to the repository. The block is a tree: a folder's entries
    are indented under its line and named relative to it; each line starts with one or more names
    (separated by spaces), and its description begins at the first word that is not a path. A line
    without a name continues the description above it."""
    paths, folders = set(), []  # folders: (indent, path) of the enclosing folder lines
    for line in block.splitlines():
        words = line.split()
        names = []
        for word in words:
            if not PATH.match(word):
                break
            names.append(word)
        if not names:
            continue
        indent = len(line) - len(line.lstrip(" "))
        while folders and folders[-1][0] >= indent:
            folders.pop()
        parent = folders[-1][1] if folders else ""
        for name in names:
            paths.add(parent + name)
        if names[-1].endswith("/"):
            folders.append((indent, parent + names[-1]))
    return paths


def modules() -> list[str]:
    return sorted(str(p.relative_to(REPO)) for p in PACKAGE.rglob("*")
                  if p.suffix in MODULES and p.is_file() and "__pycache__" not in p.parts)


def test_the_block_is_read_as_a_tree():
    block = "charseq/\n  a.py  b.py   two files\n  sub/    a folder\n    c.js    in it\n        (more words)\n  d.h\nx/y.txt  z/\n"
    assert listed_paths(block) == {"charseq/", "charseq/a.py", "charseq/b.py", "charseq/sub/", "charseq/sub/c.js",
                                   "charseq/d.h", "x/y.txt", "z/"}


def test_the_layout_lists_every_module_in_every_folder():
    listed = listed_paths(layout_block())
    missing = [m for m in modules()
               if m not in listed and not (m.endswith("/__init__.py") and m.removesuffix("__init__.py") in listed)]
    assert not missing, f"docs/architecture.md's Layout does not list: {missing}"
    folders = {str(p.relative_to(REPO)) + "/" for p in PACKAGE.rglob("*")
               if p.is_dir() and "__pycache__" not in p.parts and any(p.iterdir())}
    assert not folders - listed, f"docs/architecture.md's Layout does not list the folders {sorted(folders - listed)}"


def test_the_layout_lists_nothing_that_is_gone():
    gone = sorted(p for p in listed_paths(layout_block()) if not (REPO / p).exists())
    assert not gone, f"docs/architecture.md's Layout lists what the repository no longer has: {gone}"
