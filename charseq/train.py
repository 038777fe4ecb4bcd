"""One training loop for every head.

A head supplies a *task*: something that can run one optimisation step, evaluate, and hand
over any state it carries between steps. The loop here owns everything else: the optimizer
and its learning-rate schedule, when to stop (steps, epochs, wall-clock budget, or early
stopping: no improvement for `patience` evaluations), periodic evaluation, `metrics.jsonl` and TensorBoard, checkpoints (latest and best), Ctrl-C/SIGTERM
(checkpoint, then stop), NaN detection and resuming to exactly where a run left off.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Protocol

import keras
import numpy as np
import tensorflow as tf

from charseq.distribute import STRATEGIES, any_worker, prepare_optimizer, scope
from charseq.errors import CharseqError, Interrupted
from charseq.runs import RunDir
from charseq.settings import LR_DECAYS, ON_NAN, OPTIMIZERS as OPTIMIZER_NAMES, config_from_dict

OPTIMIZERS = dict(zip(OPTIMIZER_NAMES, (keras.optimizers.Adam, keras.optimizers.RMSprop, keras.optimizers.SGD,
                                         keras.optimizers.Adagrad)))
# Early stopping: a validation loss that falls by less than this (nats) does not reset the patience of a
# head that monitors another metric (an encoder-decoder at 100% exact match creeping from 1e-4 to 1e-5).
LOSS_MIN_DELTA = 1e-3
SAMPLE_EVERY_S = 30  # seconds between the sample texts shown at evaluations
MAX_NAN_SKIPS = 5  # --on-nan skip gives up after this many rollbacks: the run is diverging, not unlucky


@dataclass
class TrainConfig:
    """How to train: the optimisation settings shared by every head (model settings live with the head)."""

    batch_size: int = 128
    max_steps: int | None = None
    epochs: float | None = None
    time_budget: float | None = None  # minutes of training (evaluation included)
    optimizer: str = "adam"
    lr: float = 3e-3
    lr_decay: str = "cosine"  # cosine anneals to lr * min_lr_ratio at the end of the run
    decay_steps: int = 1000
    decay_rate: float = 0.96
    staircase: bool = False
    min_lr_ratio: float = 0.02
    clip_norm: float = 1.0  # global gradient-norm clipping; 0 turns it off
    eval_every: int | None = 200  # None: once per epoch
    patience: int | None = None  # early stopping: stop after this many evaluations without improvement
    seed: int = 0
    keep: int = 1  # checkpoints kept: the latest, plus keep - 1 older ones in checkpoints/
    on_nan: str = "stop"  # a non-finite loss: stop, or go back to the last checkpoint and skip the batch
    strategy: str = "default"  # tf.distribute: default (none), mirrored or multiworker; see charseq.distribute

    def validate(self) -> None:
        def positive(name, value, allow_none=False):
            if value is None and allow_none:
                return
            if value is None or not (value > 0 and math.isfinite(value)):
                raise CharseqError(f"--{name.replace('_', '-')} must be a positive number, not {value}")
        positive("batch_size", self.batch_size)
        positive("max_steps", self.max_steps, True)
        positive("epochs", self.epochs, True)
        positive("time_budget", self.time_budget, True)
        positive("lr", self.lr)
        positive("decay_steps", self.decay_steps)
        positive("decay_rate", self.decay_rate)
        positive("eval_every", self.eval_every, True)
        positive("patience", self.patience, True)
        if self.optimizer not in OPTIMIZERS:
            raise CharseqError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}")
        if self.lr_decay not in LR_DECAYS:
            raise CharseqError(f"--lr-decay must be one of {', '.join(LR_DECAYS)}")
        if self.clip_norm < 0:
            raise CharseqError("--clip-norm must be 0 (off) or positive")
        if not 0 <= self.min_lr_ratio <= 1:
            raise CharseqError("--min-lr-ratio must be in [0, 1]")
        positive("keep", self.keep)
        if self.on_nan not in ON_NAN:
            raise CharseqError(f"--on-nan must be one of {', '.join(ON_NAN)}")
        if self.strategy not in STRATEGIES:
            raise CharseqError(f"--strategy must be one of {', '.join(STRATEGIES)}")
        if self.strategy == "multiworker" and self.time_budget:
            # Workers' clocks disagree: each would stop (and anneal the learning rate) at its own step.
            raise CharseqError("--time-budget cannot be used with --strategy multiworker; give --max-steps or --epochs")

    @classmethod
    def from_dict(cls, data: dict, where: str = "config.json train") -> "TrainConfig":
        return config_from_dict(cls, data, where)

    def to_dict(self) -> dict:
        return asdict(self)


class Task(Protocol):
    """What a head gives the training loop."""

    model: keras.Model
    tokens_per_step: int  # for throughput figures
    steps_per_epoch: int

    # Optional: `monitor = ("val_accuracy", "max")` picks which evaluation metric decides the
    # best weights; without it, the lowest "val_loss" does.

    def train_step(self, step: int, optimizer) -> tf.Tensor: ...  # returns the batch loss
    def evaluate(self) -> dict: ...  # must contain the monitored metric
    def state(self) -> dict: ...  # arrays to keep in checkpoints (e.g. carried RNN state)
    def restore(self, arrays: dict) -> None: ...


STOP_SETTINGS = ("max_steps", "epochs", "time_budget")
# What a resumed run may change: where to stop, how to spread.
RESUME_SETTINGS = (*STOP_SETTINGS, "patience", "strategy")


def says_when_to_stop(settings: dict) -> bool:
    """Whether the user set a stopping rule (then no default one is added: `--max-steps` alone
    means what it says, not "whichever comes first with early stopping")."""
    return any(settings.get(k) is not None for k in STOP_SETTINGS)


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _same(given, recorded) -> bool:
    if isinstance(given, (int, float)) and isinstance(recorded, (int, float)) and \
            not isinstance(given, bool) and not isinstance(recorded, bool):
        return float(given) == float(recorded)
    return given == recorded


def given_data(recorded, **options) -> dict:
    """A head's data options as given on --resume, for `reopen_run`: each option is
    key=(label, value, default) and is compared with `recorded[key]`; one left at its default
    (not given) or that this run did not record is not compared."""
    recorded = recorded if isinstance(recorded, dict) else {}
    return {label: (value, recorded[key]) for key, (label, value, default) in options.items()
            if value != default and key in recorded}


def resolved(path) -> str | None:
    """A path as config.json records it (absolute), so that a resume from elsewhere compares right."""
    return None if path is None else str(Path(path).resolve())


def reopen_run(out, task: str, settings: dict, data: Callable[[dict], dict] | None = None
               ) -> tuple[RunDir, dict, TrainConfig]:
    """An existing run of `task` to resume: (run, its config.json, its training settings).

    A resumed run keeps every saved setting: `settings` may repeat them, and so may the head's
    data options (`data(config)` gives them as {label: (given, recorded)}, see `given_data`),
    but a value that differs from the recorded one is refused, naming each such option and its
    recorded value. Only where to stop (STOP_SETTINGS) and the strategy may change; `train`
    checks a new end against the run's progress and writes it to config.json.
    """
    run = RunDir.open(out)
    config = run.require_task(task)
    where = run.path / "config.json"
    train_section = config.get("train")
    if not isinstance(train_section, dict):
        raise CharseqError(f"{where} has no training settings")
    recorded = {}
    for section in ("model", "data"):
        if isinstance(config.get(section), dict):
            recorded.update(config[section])
    recorded.update(train_section)
    changed, unknown = [], []
    for name, value in settings.items():
        if name in RESUME_SETTINGS or value is None:
            continue
        if name not in recorded:
            unknown.append(_option(name))
        elif not _same(value, recorded[name]):
            changed.append(f"{_option(name)} (recorded {json.dumps(recorded[name])}, given {json.dumps(value)})")
    for label, (value, was) in (data(config) if data else {}).items():
        if not _same(value, was):
            changed.append(f"{label} (recorded {json.dumps(was, ensure_ascii=False)}, "
                           f"given {json.dumps(value, ensure_ascii=False)})")
    if changed or unknown:
        what = "; ".join(filter(None, [
            f"these settings cannot change: {', '.join(changed)}" if changed else "",
            f"this run did not record {', '.join(unknown)}" if unknown else ""]))
        raise CharseqError(f"--resume continues {run.path} with its own settings, and {what}. "
                           f"Only {', '.join(map(_option, RESUME_SETTINGS))} may be given on --resume; "
                           "for other settings train a new run (another --out, or --force to replace this one)")
    stop = {k: settings[k] for k in RESUME_SETTINGS if settings.get(k) is not None}
    if says_when_to_stop(stop) and "patience" not in stop:
        stop["patience"] = None  # a new end given on resume (e.g. --max-steps 3000) means train to it
    training = TrainConfig.from_dict({**train_section, **stop}, f"{where} train")
    return run, config, training


def make_optimizer(cfg: TrainConfig) -> keras.optimizers.Optimizer:
    kwargs = {"learning_rate": cfg.lr}
    if cfg.clip_norm:
        kwargs["global_clipnorm"] = cfg.clip_norm
    return OPTIMIZERS[cfg.optimizer](**kwargs)


def total_steps(cfg: TrainConfig, steps_per_epoch: int) -> int | None:
    candidates = []
    if cfg.max_steps:
        candidates.append(cfg.max_steps)
    if cfg.epochs:
        candidates.append(max(1, math.ceil(cfg.epochs * steps_per_epoch)))
    return min(candidates) if candidates else None


def learning_rate(cfg: TrainConfig, step: int, fraction_done: float | None) -> float:
    """The learning rate for `step`. `fraction_done` is how far the run is to its end
    (by steps or by the wall-clock budget, whichever is further), None if it has no end."""
    if cfg.lr_decay == "exponential":
        exponent = step / cfg.decay_steps
        return cfg.lr * cfg.decay_rate ** (math.floor(exponent) if cfg.staircase else exponent)
    if cfg.lr_decay == "cosine" and fraction_done is not None:
        p = min(1.0, max(0.0, fraction_done))
        return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p)))
    return cfg.lr


class _StopRequest:
    """Turns the first Ctrl-C or SIGTERM into a request to checkpoint and stop after the
    current step; a second Ctrl-C interrupts at once."""

    def __init__(self):
        self.requested = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


def train(task: Task, run: RunDir, cfg: TrainConfig, resume: bool = False,
          log: Callable[[str], None] = print, progress_bar: bool | None = None,
          sample_fn: Callable[[], str] | None = None) -> dict:
    """Train `task` to the end set by `cfg`, writing everything into `run`. Returns the last metrics."""
    cfg.validate()
    model = task.model
    strategy = getattr(task, "strategy", None)  # set by a task whose model was built under a tf.distribute strategy
    with scope(strategy):
        optimizer = make_optimizer(cfg)
        optimizer.build(model.trainable_variables)
    prepare_optimizer(strategy, optimizer)
    end_step = total_steps(cfg, task.steps_per_epoch)
    eval_every = cfg.eval_every or task.steps_per_epoch
    budget_s = cfg.time_budget * 60 if cfg.time_budget else None
    if end_step is None and budget_s is None and cfg.patience is None:
        raise CharseqError("nothing says when to stop: give --max-steps, --epochs, --time-budget or --patience")

    monitor, mode = getattr(task, "monitor", ("val_loss", "min"))
    # since_best: evaluations in a row where neither the monitored metric nor the validation loss
    # improved (early stopping). The loss counts too (by LOSS_MIN_DELTA), so that a metric stuck at 0
    # (exact match early in training) does not stop a run whose loss still falls.
    progress = {"step": 0, "elapsed_s": 0.0, "best": None, "best_loss": None, "since_best": 0}
    last: dict = {}
    if resume:
        progress, extra = run.load_checkpoint(model, optimizer, log=log)
        task.restore(extra)
        _move_the_end(run, cfg, progress, end_step, budget_s, log)
        run.truncate_metrics(progress["step"])
        last = run.metrics()[-1] if run.metrics() else {}
        log(f"resuming from step {progress['step']} ({progress['elapsed_s']:.0f}s trained)")

    writer = None  # made at the first evaluation, in the run's final place (a new run moves there at its first checkpoint)
    show_bar = sys.stdout.isatty() if progress_bar is None else progress_bar
    bar = keras.utils.Progbar(end_step, stateful_metrics=["loss", "lr"]) if show_bar else None
    step = progress["step"]
    # Losses since the last evaluation: kept in a checkpoint taken between evaluations (Ctrl-C), so
    # that a resumed run reports the same train_loss as one that never stopped.
    losses: list = list(progress.get("window_losses", []))
    nan_skips = 0
    window_start, window_tokens = time.perf_counter(), 0
    clock_start = time.perf_counter() - progress["elapsed_s"]

    def elapsed() -> float:
        return time.perf_counter() - clock_start

    def fraction_done() -> float | None:
        parts = [step / end_step] if end_step else []
        if budget_s:
            parts.append(elapsed() / budget_s)
        return max(parts) if parts else None

    def stalled() -> bool:
        return cfg.patience is not None and progress.get("since_best", 0) >= cfg.patience

    def finished() -> bool:
        return ((end_step is not None and step >= end_step) or (budget_s is not None and elapsed() >= budget_s)
                or stalled())

    def checkpoint():
        saved = {**progress, "step": step, "elapsed_s": elapsed(), "window_losses": [float(x) for x in losses]}
        try:
            run.save_checkpoint(model, optimizer, saved, task.state(), keep=cfg.keep)
        except OSError as e:  # disk full, directory made read-only, file too large: the old one is intact
            kept = (f"the last good checkpoint (step {progress['step']}) is intact" if run.has_checkpoint()
                    else "no checkpoint was written")
            raise CharseqError(f"cannot write a checkpoint in {run.shown} ({e.strerror or e}); {kept}; "
                               "free space and continue with --resume") from None
        progress.update(saved)

    def check_finite(value: float):
        if math.isfinite(value):
            return
        where = (f"the last good checkpoint (step {progress['step']}) is kept" if run.has_checkpoint()
                 else "no checkpoint was written yet")
        raise CharseqError(f"the loss became {value} at step {step}; stopped, and {where}. "
                           "Try a lower --lr, a --clip-norm, or --on-nan skip")

    def roll_back(value: float):
        """--on-nan skip: back to the last good checkpoint, then on past the batch that failed."""
        nonlocal nan_skips, losses
        nan_skips += 1
        if nan_skips > MAX_NAN_SKIPS or not run.has_checkpoint():
            check_finite(value)
        _, extra = run.load_checkpoint(model, optimizer)
        task.restore(extra)
        losses = []
        log(f"step {step}: the loss became {value}; back to the weights of step {progress['step']}, "
            f"skipping this batch ({nan_skips} of at most {MAX_NAN_SKIPS} skips)")

    last_sample = None

    if cfg.on_nan == "skip" and not run.has_checkpoint():
        checkpoint()  # something to go back to, even before the first evaluation

    def evaluate_and_log():
        nonlocal losses, window_start, window_tokens, last, last_sample, writer
        train_seconds = time.perf_counter() - window_start
        train_loss = float(np.mean([float(x) for x in losses])) if losses else None
        losses = []
        metrics = task.evaluate()
        record = {"step": step, "elapsed_s": round(elapsed(), 2), "train_loss": train_loss,
                  **metrics, "lr": float(optimizer.learning_rate.numpy()),
                  "chars_per_sec": round(window_tokens / train_seconds, 1) if train_seconds > 0 else None}
        run.append_metrics(record)
        if writer is None:
            writer = tf.summary.create_file_writer(str(run.path / "logs"))
        with writer.as_default(step=step):
            for key, value in record.items():
                if key not in ("step", "elapsed_s") and isinstance(value, (int, float)):
                    tf.summary.scalar(key, value)
        writer.flush()  # a live TensorBoard (or `charseq plot`) sees each evaluation as it happens
        best, value = progress["best"], metrics[monitor]
        improved = best is None or (value < best if mode == "min" else value > best)
        if improved:
            progress["best"] = value
            run.save_best(model, record)
        best_loss, loss = progress.get("best_loss"), metrics.get("val_loss")
        loss_improved = loss is not None and (best_loss is None or loss < best_loss - LOSS_MIN_DELTA)
        if loss_improved:
            progress["best_loss"] = loss
        progress["since_best"] = 0 if improved or loss_improved else progress.get("since_best", 0) + 1
        checkpoint()
        line = (f"step {step}: train {train_loss:.4f}" if train_loss is not None else f"step {step}:") + \
            "".join(f" {k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)) + \
            f" | {record['chars_per_sec'] or 0:,.0f} chars/s | {elapsed():.0f}s" + (" *" if improved else "")
        if bar:
            sys.stdout.write("\n")
        log(line)
        if sample_fn is not None and (last_sample is None or time.perf_counter() - last_sample >= SAMPLE_EVERY_S):
            log(sample_fn())  # at most every SAMPLE_EVERY_S: on small data evaluations come every few seconds
            last_sample = time.perf_counter()
        last = record
        window_start, window_tokens = time.perf_counter(), 0

    with _StopRequest() as stop:
        while not finished():
            optimizer.learning_rate.assign(learning_rate(cfg, step, fraction_done()))
            loss = task.train_step(step, optimizer)
            step += 1
            window_tokens += task.tokens_per_step
            losses.append(loss)
            if not run.published:  # a new run replaces --out (and any old run there) once one step has worked
                check_finite(float(loss))
                checkpoint()
            if cfg.on_nan == "skip":
                # Every step is checked (one small device sync), so no update from a bad batch survives.
                value = float(loss)
                if not math.isfinite(value):
                    roll_back(value)
                    continue
            if step % eval_every == 0 or step % 50 == 0 or finished():
                recent = float(loss)
                check_finite(recent)
                if bar:
                    bar.update(step, [("loss", recent), ("lr", float(optimizer.learning_rate.numpy()))])
            if step % eval_every == 0 or finished():
                evaluate_and_log()
                if stalled():
                    log(f"early stop at step {step}: no improvement in the last {cfg.patience} evaluations; "
                        f"the best weights ({monitor} {progress['best']:.4f}) are kept")
            if any_worker(strategy, stop.requested is not None):
                stop.requested = stop.requested or "another worker"
                checkpoint()
                raise Interrupted(f"stopped by {stop.requested} at step {step}; checkpoint saved in "
                                   f"{run.shown}; continue with --resume")
    if not last or last["step"] != step:
        evaluate_and_log()
    if writer is not None:
        writer.close()
    return last


def _move_the_end(run: RunDir, cfg: TrainConfig, progress: dict, end_step: int | None, budget_s: float | None,
                  log) -> None:
    """On --resume: a new end (--max-steps, --epochs, --time-budget) must not be before the
    run's progress; if it is not, it is written to config.json and said."""
    config = run.read_config()
    recorded = config["train"]
    moved = {k: (recorded.get(k), getattr(cfg, k)) for k in RESUME_SETTINGS if not _same(recorded.get(k), getattr(cfg, k))}
    if not moved:
        return
    step, elapsed = int(progress["step"]), float(progress["elapsed_s"])
    stops = [k for k in moved if k in STOP_SETTINGS and getattr(cfg, k) is not None]
    if "time_budget" in stops and budget_s is not None and budget_s < elapsed:
        raise CharseqError(f"--time-budget {cfg.time_budget:g} is before this run's progress ({elapsed / 60:.1f} "
                           f"minutes trained); give a later end, or omit it to keep {recorded.get('time_budget')}")
    if end_step is not None and end_step < step and any(k in stops for k in ("max_steps", "epochs")):
        given = " and ".join(f"{_option(k)} {getattr(cfg, k):g}" for k in stops if k != "time_budget")
        raise CharseqError(f"{given} ends at step {end_step}, before this run's progress (step {step}); "
                           "give a later end, or omit it to continue to the recorded one")
    run.write_config({**config, "train": cfg.to_dict()})
    log("resume: " + ", ".join(f"{_option(k)} {json.dumps(v)} (was {json.dumps(w)})" for k, (w, v) in moved.items())
        + f"; the stopping rules and --strategy may change on --resume, the other settings are the run's own")
