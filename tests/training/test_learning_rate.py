"""Every step trains at the schedule's learning rate: charseq's heads set it inside their compiled
step (an input of the step, not an eager assignment between steps), on one replica and mirrored; and
under a time budget the schedule does not depend on how long the run took to compile."""

import functools
import time

import numpy as np
import pytest

from charseq.heads.lm.run import train_lm
from charseq.heads.lm.task import LMTask
from helpers import QUIET, TINY_SETTINGS, read_metrics, saved_arrays


@pytest.mark.parametrize("strategy", ["default", "mirrored"])
def test_each_step_trains_at_the_schedules_rate(tmp_path, corpus_file, strategy):
    # Exponential decay by 1e-30 per step: the first step at lr, the later ones at ~0 (1e-32, then 0 in
    # float32). Three steps must leave the weights of one; a step at any other rate would move them.
    settings = {**TINY_SETTINGS, "lr": 0.01, "lr_decay": "exponential", "decay_rate": 1e-30, "decay_steps": 1,
                "eval_every": 1, "dropout": 0.0, "strategy": strategy}
    one = train_lm(corpus_file, tmp_path / "one", max_steps=1, **QUIET, **settings).path
    three = train_lm(corpus_file, tmp_path / "three", max_steps=3, **QUIET, **settings).path
    assert [r["lr"] for r in read_metrics(three)] == pytest.approx([0.01, 1e-32, 0.0], rel=1e-6, abs=1e-45)
    weights = saved_arrays(three / "checkpoint.npz", model_only=True)
    after_one = saved_arrays(one / "checkpoint.npz", model_only=True)
    assert weights and weights.keys() == after_one.keys()
    for name, value in weights.items():
        np.testing.assert_array_equal(value, after_one[name], err_msg=name)


def test_a_budget_run_that_its_steps_end_repeats_itself(tmp_path, corpus_file, monkeypatch):
    """Under --time-budget the learning rate follows the clock once it is further along than the steps,
    and its clock starts after the first step: the seconds a run takes to compile, which vary, do not
    move the rate of a run that its steps end, so the same seed gives the same rates and losses. The
    second run here compiles 5 s slower (a twelfth of its budget, three of its 40 steps)."""
    settings = {**TINY_SETTINGS, "eval_every": 5, "max_steps": 40, "time_budget": 1}
    a = read_metrics(train_lm(corpus_file, tmp_path / "a", **QUIET, **settings).path)
    first_step = LMTask.train_step

    @functools.wraps(first_step)
    def slow_first_step(self, *args, **kwargs):
        if not getattr(self, "slowed", False):
            self.slowed = True
            time.sleep(5)
        return first_step(self, *args, **kwargs)
    monkeypatch.setattr(LMTask, "train_step", slow_first_step)
    b = read_metrics(train_lm(corpus_file, tmp_path / "b", **QUIET, **settings).path)
    assert len(a) == 8 and a[-1]["lr"] < a[0]["lr"]  # annealed to the end
    assert [(r["step"], r["lr"], r["train_loss"], r["val_loss"]) for r in a] == \
        [(r["step"], r["lr"], r["train_loss"], r["val_loss"]) for r in b]
