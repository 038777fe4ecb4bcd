"""The architecture page's Layout section names every module of charseq/ (a new one fails here until it is listed)."""

import re

from helpers import REPO

PACKAGE = REPO / "charseq"


def layout() -> str:
    page = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    return re.search(r"## Layout\n\n```\n(.*?)```", page, re.S).group(1)


def test_the_layout_names_every_module():
    text = layout()
    missing = [p.name for p in PACKAGE.iterdir()
               if not p.name.startswith(("_", ".")) and p.name not in text and p.stem not in text]
    for folder in ("data", "heads"):
        missing += [f"{folder}/{p.name}" for p in (PACKAGE / folder).iterdir()
                    if not p.name.startswith(("_", ".")) and f"{folder}/{p.name}" not in text]
    for head in (PACKAGE / "heads").iterdir():
        if head.is_dir() and not head.name.startswith("_"):
            line = text[text.index(f"heads/{head.name}/"):].split("\n  heads/", 1)[0].split("\n  train.py")[0]
            missing += [f"heads/{head.name}/{p.stem}" for p in head.glob("*.py")
                        if p.stem != "__init__" and not re.search(rf"\b{p.stem}\b", line)]
    assert not missing, f"docs/architecture.md's Layout does not list: {missing}"


def test_the_layout_lists_nothing_that_is_gone():
    names = re.findall(r"^  ([\w/]+\.py|[\w]+/)", layout(), re.M)
    gone = [n for n in names if not (PACKAGE / n).exists()]
    assert not gone, f"docs/architecture.md's Layout lists what charseq/ no longer has: {gone}"
