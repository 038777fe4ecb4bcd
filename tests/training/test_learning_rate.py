"""Every step trains at the schedule's learning rate: charseq's heads set it inside their compiled
step (an input of the step, not an eager assignment between steps), on one replica and mirrored."""

import numpy as np
import pytest

from charseq.heads.lm.run import train_lm
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
