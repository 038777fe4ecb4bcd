"""The troubleshooting page quotes charseq's messages as charseq prints them: each command of a block
marked `<!-- errors -->` runs, from a folder holding the project's corpora and a small run at
runs/poems, and prints the error line the page shows under it, with status 1."""

import os
import re
import shlex
import shutil

from helpers import QUIET, REPO, TINY_SETTINGS, run_cli_in_process

PAGE = REPO / "docs" / "troubleshooting.md"
BLOCK = re.compile(r"^<!-- errors -->\n```console\n(.*?)^```", re.M | re.S)


def quoted_errors() -> list[tuple[str, str]]:
    """(command, the error line shown under it) of each marked block."""
    pairs = []
    for block in BLOCK.findall(PAGE.read_text(encoding="utf-8")):
        lines = block.splitlines()
        pairs += [(line.removeprefix("$ "), following) for line, following in zip(lines, lines[1:])
                  if line.startswith("$ charseq ")]
    return pairs


def test_the_page_shows_what_charseq_prints(tmp_path):
    import charseq

    shutil.copytree(REPO / "corpora", tmp_path / "corpora")
    charseq.train_lm(REPO / "corpora" / "poems.txt", tmp_path / "runs" / "poems", max_steps=2, **QUIET, **TINY_SETTINGS)
    pairs = quoted_errors()
    assert len(pairs) >= 5, pairs
    here, wrong = os.getcwd(), []
    os.chdir(tmp_path)
    try:
        for command, shown in pairs:
            r = run_cli_in_process(*shlex.split(command)[1:])
            printed = r.stderr.strip().splitlines()
            if r.returncode != 1 or printed[-1:] != [shown]:
                wrong.append(f"{command}\n  the page: {shown}\n  charseq (status {r.returncode}): {r.stderr.strip()}")
    finally:
        os.chdir(here)
    assert not wrong, "\n".join(wrong)
