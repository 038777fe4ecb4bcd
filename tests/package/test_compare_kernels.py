"""The kernel comparison (scripts/compare_kernels.py): two builds of the recurrence ops in one
process, checked against each other and timed in alternation."""

import re
import subprocess
import sys

import pytest

from charseq import kernels
from helpers import REPO

SCRIPT = [sys.executable, str(REPO / "scripts" / "compare_kernels.py")]
in_git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True).returncode == 0


@pytest.mark.slow  # builds the GRU's ops twice (about half a minute)
@pytest.mark.skipif(not in_git, reason="compares git revisions: needs a git checkout")
@pytest.mark.skipif(not kernels.available(), reason="the compiled kernels are not available here")
def test_two_builds_of_one_revision_agree_and_are_timed_side_by_side():
    done = subprocess.run([*SCRIPT, "HEAD", "--against", "HEAD", "--cell", "gru", "--units", "16", "--batch", "4",
                           "--steps", "3", "--calls", "4", "--recurrence", "float32"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    assert "GRU 16 units, batch 4, 3 steps, recurrence float32" in done.stdout
    assert f"A = HEAD ({head}), B = HEAD ({head})" in done.stdout
    for op in ("forward", "backward"):
        line = next(line for line in done.stdout.splitlines() if line.strip().startswith(op))
        # The same sources compute the same outputs; both versions were timed.
        assert line.endswith("outputs differ by at most 0"), line
        ratio = float(re.search(r"B/A ([0-9.]+)", line).group(1))
        assert 0 < ratio < 10


@pytest.mark.skipif(not in_git, reason="compares git revisions: needs a git checkout")
def test_an_unknown_revision_is_one_line_and_a_failure():
    done = subprocess.run([*SCRIPT, "no-such-revision", "--calls", "1"], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == "compare_kernels: 'no-such-revision' is not a revision of this repository"
    assert "Traceback" not in done.stderr
