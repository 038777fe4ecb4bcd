"""One training loop for every head.

A head supplies a *task*: something that can run one optimisation step, evaluate, and hand
over any state it carries between steps. The loop (:class:`TrainingLoop`, one object holding
the run's state) owns everything else: the optimizer and its learning-rate schedule, when to
stop (steps, epochs, wall-clock budget, or early stopping: no improvement for `patience`
evaluations), periodic evaluation, `metrics.jsonl` and TensorBoard, checkpoints (latest and
best), Ctrl-C/SIGTERM (checkpoint, then stop), NaN detection and resuming to exactly where a
run left off. While it trains it holds the run's lock and keeps `status.json` up to date (progress
every few seconds, then how it ended: finished, stopped or failed), which the studio shows.

>>> cfg = TrainConfig(lr=1e-2, lr_decay="cosine", min_lr_ratio=0.1)
>>> [round(learning_rate(cfg, step, fraction_done=f), 4) for step, f in ((0, 0.0), (50, 0.5), (100, 1.0))]
[0.01, 0.0055, 0.001]
>>> total_steps(TrainConfig(max_steps=500, epochs=2), steps_per_epoch=100)
200
"""

from __future__ import annotations

import contextlib
import inspect
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Protocol

import keras
import numpy as np
import tensorflow as tf

from charseq.distribute import any_worker, prepare_optimizer, scope
from charseq.errors import CharseqError, Interrupted, write_remedy
from charseq.optimizers import OPTIMIZERS
from charseq.runs import RunDir, selection_key
from charseq.settings import TrainConfig  # noqa: F401 (charseq.train.TrainConfig)
from charseq.start import move_the_end

# Early stopping: a validation loss that falls by less than this (nats) does not reset the patience of a
# head that monitors another metric (an encoder-decoder at 100% exact match creeping from 1e-4 to 1e-5).
LOSS_MIN_DELTA = 1e-3
SAMPLE_EVERY_S = 30  # seconds between the sample texts shown at evaluations
MAX_NAN_SKIPS = 5  # --on-nan skip gives up after this many rollbacks: the run is diverging, not unlucky
STATUS_EVERY_S = 3  # seconds between progress records in status.json (a live studio's progress bar)


class Task(Protocol):
    """What a head gives the training loop."""

    model: keras.Model
    tokens_per_step: int  # for throughput figures
    steps_per_epoch: int

    # Optional: `token_name = "rows"` names what tokens_per_step counts in the log line (default "chars").
    # Optional: `monitor = ("val_accuracy", "max")` picks which evaluation metric decides the
    # best weights (charseq.runs.selection_key: a tie goes to the lower "val_loss"); without it, the
    # lowest "val_loss" does.

    def train_step(self, step: int, optimizer) -> tf.Tensor: ...  # returns the batch loss
    # A task whose train_step also takes `learning_rate` (the step's rate, a float) sets it on the
    # optimizer inside its compiled step (charseq.distribute.compile_train_step does); for any other
    # the loop assigns it to `optimizer.learning_rate` before the call.
    def evaluate(self) -> dict: ...  # must contain the monitored metric
    def state(self) -> dict: ...  # arrays to keep in checkpoints (e.g. carried RNN state)
    def restore(self, arrays: dict) -> None: ...


def make_optimizer(cfg: TrainConfig) -> keras.optimizers.Optimizer:
    kwargs = {"learning_rate": cfg.lr}
    if cfg.clip_norm:
        kwargs["global_clipnorm"] = cfg.clip_norm
    if cfg.ema:
        kwargs.update(use_ema=True, ema_momentum=cfg.ema)
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
    return TrainingLoop(task, run, cfg, log=log, progress_bar=progress_bar, sample_fn=sample_fn).run(resume)


def last_logged_step(logs: Path) -> int:
    """The last step the TensorBoard event files in `logs` hold a value of (0: none)."""
    last = 0
    for path in sorted(logs.glob("events.out.tfevents.*")):
        try:
            for record in tf.data.TFRecordDataset(str(path)):
                event = tf.compat.v1.Event.FromString(record.numpy())
                if event.summary.value:
                    last = max(last, event.step)
        except tf.errors.DataLossError:  # a record cut short by a kill: those before it stand
            pass
    return last


class TrainingLoop:
    """One training run of a task: the optimizer, the clock, the losses since the last evaluation,
    the best metric and the last checkpoint, all on this object; :meth:`run` steps until
    :meth:`finished`, evaluating, checkpointing and stopping on request."""

    def __init__(self, task: Task, run: RunDir, cfg: TrainConfig, log: Callable[[str], None] = print,
                 progress_bar: bool | None = None, sample_fn: Callable[[], str] | None = None):
        cfg.validate()
        self.task, self.run_dir, self.cfg, self.log, self.sample_fn = task, run, cfg, log, sample_fn
        self.model = task.model
        self.strategy = getattr(task, "strategy", None)  # set by a task whose model was built under a strategy
        with scope(self.strategy):
            self.optimizer = make_optimizer(cfg)
            self.optimizer.build(self.model.trainable_variables)
        prepare_optimizer(self.strategy, self.optimizer)
        self.task_sets_rate = "learning_rate" in inspect.signature(task.train_step).parameters
        self.end_step = total_steps(cfg, task.steps_per_epoch)
        self.eval_every = cfg.eval_every or task.steps_per_epoch
        self.budget_s = cfg.time_budget * 60 if cfg.time_budget else None
        if self.end_step is None and self.budget_s is None and cfg.patience is None:
            raise CharseqError("nothing says when to stop: give --max-steps, --epochs, --time-budget or --patience")
        self.monitor, self.mode = getattr(task, "monitor", ("val_loss", "min"))
        # A task without validation data (--val-fraction 0) reports training figures only: it keeps its
        # last weights, and cannot stop early.
        self.validated = getattr(task, "validated", True)
        if not self.validated and cfg.patience is not None:
            raise CharseqError("--patience stops when the validation metric stops improving, and this run has no "
                               "validation split; give --max-steps, --epochs or --time-budget")
        # The last checkpoint's progress. since_best: evaluations in a row where neither the monitored
        # metric nor the validation loss improved (early stopping). The loss counts too (by
        # LOSS_MIN_DELTA), so that a metric stuck at 0 (exact match early in training) does not stop a
        # run whose loss still falls.
        self.saved = {"step": 0, "elapsed_s": 0.0, "best": None, "best_loss": None, "since_best": 0}
        self.step = 0
        # Losses since the last evaluation: kept in a checkpoint taken between evaluations (Ctrl-C), so
        # that a resumed run reports the same train_loss as one that never stopped.
        self.losses: list = []
        self.last: dict = {}  # the last evaluation's record
        self.nan_skips = 0
        self.writer = None  # made at the first evaluation, in the run's final place (a new run moves there then)
        self.logged_up_to = 0  # the last step the TensorBoard log already holds (set on --resume)
        show_bar = sys.stdout.isatty() if progress_bar is None else progress_bar
        self.bar = keras.utils.Progbar(self.end_step, stateful_metrics=["loss", "lr"]) if show_bar else None
        self.last_sample = None
        self.window_start = self.clock_start = time.perf_counter()
        # Seconds trained when the run's first step was done (its compilation included): the learning
        # rate's clock starts there, so that the compile's seconds, which vary from run to run, do not
        # move the schedule of a run that its steps, not its budget, end (kept across --resume).
        self.started_s: float | None = None
        self.window_tokens = 0
        self.status_written = None  # when status.json was last written (perf_counter)

    # ------------------------------------------------------------------ where the run is
    def elapsed(self) -> float:
        return time.perf_counter() - self.clock_start

    def fraction_done(self) -> float | None:
        parts = [self.step / self.end_step] if self.end_step else []
        if self.budget_s and self.started_s is not None and self.budget_s > self.started_s:
            parts.append((self.elapsed() - self.started_s) / (self.budget_s - self.started_s))
        return max(parts) if parts else None

    def stalled(self) -> bool:
        return self.cfg.patience is not None and self.saved.get("since_best", 0) >= self.cfg.patience

    def finished(self) -> bool:
        return self.end_reached() is not None

    def end_reached(self) -> str | None:
        """Which stopping rule the run has met: "steps" (its end step), "budget" (its time budget),
        "patience" (early stopping), or None while it trains on."""
        if self.end_step is not None and self.step >= self.end_step:
            return "steps"
        if self.budget_s is not None and self.elapsed() >= self.budget_s:
            return "budget"
        return "patience" if self.stalled() else None

    # ------------------------------------------------------------------ checkpoints and bad losses
    def resume(self) -> None:
        # A SIGKILL or power cut mid-write leaves a hidden temporary file that nothing else removes.
        removed = self.run_dir.remove_stale_temporaries()
        if removed:
            self.log(f"removed {len(removed)} half-written file(s) an interrupted write left: {', '.join(removed)}")
        self.saved, extra = self.run_dir.load_checkpoint(self.model, self.optimizer, log=self.log)
        self.task.restore(extra)
        with self.writing("config.json"):
            move_the_end(self.run_dir, self.cfg, self.saved, self.end_step, self.budget_s, self.log)
        with self.writing("metrics.jsonl"):
            self.run_dir.truncate_metrics(self.saved["step"])
        self.logged_up_to = last_logged_step(self.run_dir.path / "logs")
        self.last = self.run_dir.metrics()[-1] if self.run_dir.metrics() else {}
        self.step = self.saved["step"]
        self.started_s = self.saved.get("started_s")  # None in a checkpoint of an earlier charseq: set at the next step
        self.losses = list(self.saved.get("window_losses", []))
        self.window_start = time.perf_counter()
        self.clock_start = self.window_start - self.saved["elapsed_s"]
        self.log(f"resuming from step {self.step} ({self.saved['elapsed_s']:.0f}s trained)")
        end = self.end_reached()
        if end is not None:  # a finished run resumed as it was: say why nothing trains, and how to go on
            self.log(f"nothing left to train: {self.why_finished(end)}")

    def why_finished(self, end: str) -> str:
        """The stopping rule `end` (see end_reached) the run has met, and the option that moves it."""
        if end == "steps":
            return f"the run has reached its end at step {self.end_step} (a later --max-steps or --epochs trains on)"
        if end == "budget":
            return f"the run has used its --time-budget of {self.budget_s / 60:g} minutes (a longer one trains on)"
        return (f"the run's score has not improved for --patience {self.cfg.patience} evaluations (a larger "
                "--patience trains on)")

    def checkpoint(self, weights_checked: bool = False) -> None:
        # A step's loss is computed before its update, so an update that overflows the weights shows in
        # no loss yet: written, it would replace the last good checkpoint with weights of inf or nan.
        if not weights_checked:
            self.check_weights_finite()
        saved = {**self.saved, "step": self.step, "elapsed_s": self.elapsed(), "started_s": self.started_s,
                 "window_losses": [float(x) for x in self.losses]}
        with self.writing("a checkpoint"):
            self.run_dir.save_checkpoint(self.model, self.optimizer, saved, self.task.state(), keep=self.cfg.keep)
        self.saved.update(saved)
        # status.json keeps up with every checkpoint: after a SIGKILL it says at least how far --resume goes.
        self.record_status("running")

    @contextlib.contextmanager
    def writing(self, what: str):
        """Turn a failed write of `what` (disk full, directory made read-only, file too large, a
        TensorBoard log that cannot grow) into the one line that says what failed, what is intact
        and what to do. Every file is written atomically, so the one being written is the old one."""
        try:
            yield
        except (OSError, tf.errors.OpError) as e:
            if self.lost_a_worker(e):  # the checkpoint's gather of every worker's rows, not the write
                raise
            reason = getattr(e, "strerror", None) or getattr(e, "message", None) or str(e)
            remedy = write_remedy(e, "the run directory")
            if not self.run_dir.published:
                kept = f"nothing of the new run was kept (an old run there is untouched); {remedy} and train again"
            elif self.run_dir.has_checkpoint():
                kept = (f"the last good checkpoint (step {self.saved['step']}) is intact; {remedy} and "
                        "continue with --resume")
            else:
                kept = f"no checkpoint was written; {remedy} and train again"
            raise CharseqError(f"cannot write {what} in {self.run_dir.shown} ({reason}); {kept}") from None

    def check_finite(self, value: float) -> None:
        if math.isfinite(value):
            return
        where = (f"the last good checkpoint (step {self.saved['step']}) is kept" if self.run_dir.has_checkpoint()
                 else "no checkpoint was written yet")
        raise CharseqError(f"the loss became {value} at step {self.step}; stopped, and {where}. "
                           "Try a lower --lr, a --clip-norm, or --on-nan skip")

    def check_weights_finite(self) -> None:
        bad = next((v for v in self.model.trainable_variables if not np.isfinite(v.numpy()).all()), None)
        if bad is None:
            return
        where = (f"the last good checkpoint (step {self.saved['step']}) is kept" if self.run_dir.has_checkpoint()
                 else "no checkpoint was written yet")
        raise CharseqError(f"the weights became inf or nan at step {self.step} (the loss before that step's update "
                           f"was finite); stopped, and {where}. Try a lower --lr, a --clip-norm, or --on-nan skip")

    def weights_finite(self) -> bool:
        try:
            self.check_weights_finite()
        except CharseqError:
            return False
        return True

    def roll_back(self, value: float) -> None:
        """--on-nan skip: back to the last good checkpoint, then on past the batch that failed."""
        self.nan_skips += 1
        if self.nan_skips > MAX_NAN_SKIPS or not self.run_dir.has_checkpoint():
            self.check_finite(value)
        _, extra = self.run_dir.load_checkpoint(self.model, self.optimizer)
        self.task.restore(extra)
        self.losses = []
        self.log(f"step {self.step}: the loss became {value}; back to the weights of step {self.saved['step']}, "
                 f"skipping this batch ({self.nan_skips} of at most {MAX_NAN_SKIPS} skips)")

    # ------------------------------------------------------------------ evaluation
    def evaluate(self) -> None:
        """Evaluate, record (metrics.jsonl, TensorBoard), keep the best weights, checkpoint, and say so."""
        if not self.weights_finite():  # nothing of overflowed weights is evaluated, kept or checkpointed
            if self.cfg.on_nan == "skip":
                self.roll_back(math.nan)
                return
            self.check_weights_finite()  # stops, saying so
        train_seconds = time.perf_counter() - self.window_start
        train_loss = float(np.mean([float(x) for x in self.losses])) if self.losses else None
        self.losses = []
        with self._averaged_weights():
            metrics = self.task.evaluate()
            record = {"step": self.step, "elapsed_s": round(self.elapsed(), 2), "time": round(time.time(), 1),
                      # tokens trained on so far: steps x the task's tokens per step (batch x window or mean length)
                      "tokens_seen": self.step * self.task.tokens_per_step, "train_loss": train_loss,
                      **metrics, "lr": float(self.optimizer.learning_rate.numpy()),
                      "chars_per_sec": round(self.window_tokens / train_seconds, 1) if train_seconds > 0 else None}
            best, value = self.saved["best"], metrics.get(self.monitor)
            if not self.validated:
                value, improved = None, False
                self.run_dir.save_best(self.model, record)  # no validation: the weights kept are the last ones
            else:
                # The best's loss is unknown in a checkpoint of an earlier charseq: then a tie keeps it.
                kept = {self.monitor: best, "val_loss": self.saved.get("val_loss_at_best", -math.inf)}
                improved = best is None or (selection_key(metrics, self.monitor, self.mode)
                                            < selection_key(kept, self.monitor, self.mode))
            if improved:
                with self.writing("the best weights (best.npz)"):
                    self.run_dir.save_best(self.model, record)
            # A sample of the weights evaluated, at most every SAMPLE_EVERY_S: on small data evaluations come
            # every few seconds.
            sample = self.sample_fn() if self.sample_fn is not None and (
                self.last_sample is None or time.perf_counter() - self.last_sample >= SAMPLE_EVERY_S) else None
        with self.writing("metrics.jsonl"):
            self.run_dir.append_metrics(record)
        with self.writing("the TensorBoard log (logs/)"):
            self._summarize(record)
        if improved:
            self.saved["best"] = value
            self.saved["val_loss_at_best"] = metrics.get("val_loss")
        best_loss, loss = self.saved.get("best_loss"), metrics.get("val_loss")
        loss_improved = loss is not None and (best_loss is None or loss < best_loss - LOSS_MIN_DELTA)
        if loss_improved:
            self.saved["best_loss"] = loss
        self.saved["since_best"] = 0 if improved or loss_improved else self.saved.get("since_best", 0) + 1
        self.checkpoint(weights_checked=True)  # the weights evaluated, found finite above
        speed = f"{record['chars_per_sec'] or 0:,.0f} {getattr(self.task, 'token_name', 'chars')}/s"
        line = (f"step {self.step}: train {train_loss:.4f}" if train_loss is not None else f"step {self.step}:") + \
            "".join(f" {k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)) + \
            f" | {speed} | {self.elapsed():.0f}s" + (" *" if improved else "")
        if self.bar:
            sys.stdout.write("\n")
        self.log(line)
        if sample is not None:
            self.log(sample)
            self.last_sample = time.perf_counter()
        self.last = record
        self.window_start, self.window_tokens = time.perf_counter(), 0

    @contextlib.contextmanager
    def _averaged_weights(self):
        """With --ema, the model holds the moving average of its weights inside the block, and its
        own (raw) weights again after it."""
        if not self.cfg.ema:
            yield
            return
        variables = self.model.trainable_variables
        raw = [v.numpy() for v in variables]
        self.optimizer.finalize_variable_values(variables)
        try:
            yield
        finally:
            for v, value in zip(variables, raw):
                v.assign(value)

    def _summarize(self, record: dict) -> None:
        # An evaluation logged before the run stopped, but after its last checkpoint, is made again on
        # --resume with the same figures: TensorBoard's files cannot be cut back as metrics.jsonl is,
        # so it is left as logged.
        if self.step <= self.logged_up_to:
            return
        if self.writer is None:
            self.writer = tf.summary.create_file_writer(str(self.run_dir.path / "logs"))
        with self.writer.as_default(step=self.step):
            for key, value in record.items():
                if key not in ("step", "elapsed_s", "time", "tokens_seen") and isinstance(value, (int, float)):
                    tf.summary.scalar(key, value)
        self.writer.flush()  # a live TensorBoard (or `charseq plot`) sees each evaluation as it happens

    def record_status(self, status: str, message: str | None = None) -> None:
        """status.json: how training stands (see RunDir.status). A new run that never reached its
        first checkpoint is deleted instead, so it gets no record of how it ended."""
        if status != "running" and not self.run_dir.published:
            return
        try:
            self.run_dir.write_status(status, step=self.step, end_step=self.end_step, time_budget_s=self.budget_s,
                                      elapsed_s=round(self.elapsed(), 2), message=message)
        except (OSError, CharseqError) as e:  # a full disk must not stop training; the checkpoint says more
            if status == "running" and self.status_written is None:
                self.log(f"warning: cannot record the run's status ({getattr(e, 'strerror', None) or e})")
        self.status_written = time.perf_counter()

    # ------------------------------------------------------------------ the loop
    def run(self, resume: bool = False) -> dict:
        """Train to the end; returns the last evaluation's record. The run is locked meanwhile and
        status.json says how it stands, then how it ended."""
        if resume:
            self.resume()
        self.run_dir.hold()
        self.record_status("running")
        try:
            last = self._train()
        except (Interrupted, KeyboardInterrupt):
            self.record_status("stopped", f"stopped at step {self.step}; continue with --resume")
            raise
        except BrokenPipeError:
            # The reader of the log went away (`charseq train-lm ... | head`): the run did not fail, and
            # every line is said after the checkpoint it reports, so the last checkpoint is where it stands.
            self.step = self.saved["step"]
            self.record_status("stopped", f"stopped at step {self.step} (its output was closed); "
                                          "continue with --resume")
            raise
        except BaseException as e:
            message = e.message if isinstance(e, CharseqError) else f"{type(e).__name__} at step {self.step}"
            self.record_status("failed", message.splitlines()[0] if message else None)
            raise
        finally:
            self.run_dir.let_go()
        return last

    def lost_a_worker(self, error: BaseException) -> bool:
        """Whether `error` is how TensorFlow fails a multi-worker run's collective op when another worker
        stops answering (killed, out of memory, its machine gone)."""
        return isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy) and isinstance(
            error, (tf.errors.UnavailableError, tf.errors.CancelledError, tf.errors.DeadlineExceededError,
                    tf.errors.AbortedError))

    @contextlib.contextmanager
    def in_touch_with_the_workers(self):
        """A worker lost mid-run is one line naming what happened and what is intact, not an internal error."""
        try:
            yield
        except tf.errors.OpError as e:
            if not self.lost_a_worker(e):
                raise
            kept = (f"the checkpoint of step {self.saved['step']} is intact; start every worker again with --resume"
                    if self.run_dir.published else "no checkpoint was written; start every worker again")
            raise CharseqError(f"lost touch with another worker of the cluster at step {self.step} "
                               f"({type(e).__name__}); {kept}") from None

    def _train(self) -> dict:
        with self.in_touch_with_the_workers():
            return self._train_to_the_end()

    def _train_to_the_end(self) -> dict:
        if self.cfg.on_nan == "skip" and not self.run_dir.has_checkpoint():
            self.checkpoint()  # something to go back to, even before the first evaluation
        with _StopRequest() as stop:
            while not self.finished():
                if not self.train_step():
                    continue  # rolled back past a bad batch (--on-nan skip)
                if any_worker(self.strategy, stop.requested is not None):
                    stop.requested = stop.requested or "another worker"
                    self.checkpoint()
                    raise Interrupted(f"stopped by {stop.requested} at step {self.step}; checkpoint saved in "
                                      f"{self.run_dir.shown}; continue with --resume")
        if not self.last or self.last["step"] != self.step:
            self.evaluate()
        if self.writer is not None:
            self.writer.close()
        self.record_status("finished", f"early stop at step {self.step}" if self.stalled() else None)
        return self.last

    def train_step(self) -> bool:
        """One optimisation step, then whatever falls due: a first checkpoint, a check of the loss, an
        evaluation. False if the step's loss was not finite and the run went back (--on-nan skip)."""
        cfg, optimizer = self.cfg, self.optimizer
        rate = learning_rate(cfg, self.step, self.fraction_done())
        if self.task_sets_rate:
            loss = self.task.train_step(self.step, optimizer, learning_rate=rate)
        else:
            optimizer.learning_rate.assign(rate)
            loss = self.task.train_step(self.step, optimizer)
        self.step += 1
        if self.started_s is None:
            self.started_s = self.elapsed()
        self.window_tokens += self.task.tokens_per_step
        if time.perf_counter() - self.status_written >= STATUS_EVERY_S:
            self.record_status("running")
        self.losses.append(loss)
        if not self.run_dir.published:  # a new run replaces --out (and any old run there) once one step has worked
            self.check_finite(float(loss))
            self.checkpoint()
        if cfg.on_nan == "skip":
            # Every step is checked (one small device sync), so no update from a bad batch survives.
            value = float(loss)
            if not math.isfinite(value):
                self.roll_back(value)
                return False
        if self.step % self.eval_every == 0 or self.step % 50 == 0 or self.finished():
            recent = float(loss)
            self.check_finite(recent)
            if self.bar:
                self.bar.update(self.step, [("loss", recent), ("lr", float(optimizer.learning_rate.numpy()))])
        if self.step % self.eval_every == 0 or self.finished():
            self.evaluate()
            if self.stalled():
                self.log(f"early stop at step {self.step}: no improvement in the last {cfg.patience} evaluations; "
                         f"the best weights ({self.monitor} {self.saved['best']:.4f}) are kept")
        return True
