"""Training on several devices or machines with TensorFlow's own engine, `tf.distribute`.

    --strategy default       one device, no tf.distribute at all (the fastest path on one CPU)
    --strategy mirrored      MirroredStrategy: one replica per local GPU (on a CPU-only machine, one CPU replica)
    --strategy multiworker   MultiWorkerMirroredStrategy: one process per machine, the cluster described by
                             the TF_CONFIG environment variable

Every replica holds a copy of the model; each step, each replica takes its own rows of the
global batch (`--batch-size` is the global batch: replica i of R reads rows [i*B/R, (i+1)*B/R)
of the batch a single process would read), the replicas' gradients are summed into the
gradient of the global batch, and every replica applies the same update. So a run on R
replicas follows the same loss curve as a single-process run with the same --batch-size and
--lr; the learning rate is never scaled behind the user's back.

Batches whose size R does not divide (the classifier's and seq2seq's last batch of an epoch)
get copies of their first row, weighted 0, up to a multiple of R (`pad_rows`); each replica's
loss is then its weighted sum over the global count of real rows (or tokens), so the shares
add up to the single-process mean and the padding contributes nothing.

In a multi-worker run the chief (task 0 of "worker", or the "chief" task) writes the run
directory; every other worker writes its copy into a temporary directory that is deleted at
the end (or into $CHARSEQ_WORKER_DIR, kept, for inspection). Resuming reads the chief's
checkpoint in --out, so on several machines --out must be on a shared filesystem (or the
chief's run directory copied to the same path on every machine first).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf

from charseq.errors import CharseqError, Interrupted
from charseq.runs import RunDir
from charseq.settings import STRATEGIES

WORKER_DIR_ENV = "CHARSEQ_WORKER_DIR"
TF_CONFIG_SHAPE = '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}'


def _tf_config() -> dict | None:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except ValueError as e:
        raise CharseqError(f"TF_CONFIG is not valid JSON ({e})") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict) \
            or not isinstance(config.get("task"), dict):
        raise CharseqError(f"TF_CONFIG must be {TF_CONFIG_SHAPE}")
    _check_cluster(config["cluster"], config["task"])
    return config


def _check_cluster(cluster: dict, task: dict) -> None:
    """TF_CONFIG's cluster and task as tf.distribute reads them, each mistake said in one line (TensorFlow's
    own checks miss some, and fail on them with a TypeError deep in the strategy)."""
    for job in cluster:
        addresses = _addresses(cluster, job)
        if not isinstance(addresses, list) or not addresses \
                or not all(isinstance(a, str) and a.strip() for a in addresses):
            raise CharseqError(f'TF_CONFIG\'s cluster "{job}" must be a list of "host:port" addresses, '
                               f"not {json.dumps(addresses)}; TF_CONFIG must be {TF_CONFIG_SHAPE}")
        for address in addresses:  # else a worker fails only once it has read its data, or a one-worker cluster
            host, _, port = address.strip().rpartition(":")  # trains with an address no other could reach
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise CharseqError(f'TF_CONFIG\'s cluster "{job}" address {json.dumps(address)} must be '
                                   '"host:port", with a port from 1 to 65535')
    seen = {}  # address -> the task that has it: two tasks cannot both listen there, so the cluster never starts
    for job in cluster:
        listed = cluster[job]
        for i, address in listed.items() if isinstance(listed, dict) else enumerate(listed):
            where = address.strip()
            if where in seen:
                raise CharseqError(f'TF_CONFIG\'s cluster gives {seen[where]} and {job} {i} the same address '
                                   f'{json.dumps(where)}; every task needs its own "host:port"')
            seen[where] = f"{job} {i}"
    kind, index = task.get("type"), task.get("index", 0)
    if not isinstance(kind, str) or kind not in cluster:
        raise CharseqError(f"TF_CONFIG's task type {json.dumps(kind)} is not a job of its cluster "
                           f"({', '.join(map(json.dumps, cluster)) or 'none'})")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise CharseqError(f"TF_CONFIG's task index {json.dumps(index)} must be a whole number below "
                           f"{len(cluster[kind])}, the number of {kind} tasks its cluster lists")


def _addresses(cluster: dict, job: str):
    """TF_CONFIG's addresses of `job`: a list, or {index: "host:port"}, which TensorFlow accepts too."""
    addresses = cluster[job]
    return list(addresses.values()) if isinstance(addresses, dict) else addresses


def is_chief() -> bool:
    """Whether this process writes the run directory: true unless TF_CONFIG names another task
    as the chief (the "chief" task if the cluster has one, else worker 0)."""
    config = _tf_config()
    if config is None:
        return True
    task = config["task"]
    kind, index = task.get("type"), task.get("index", 0)
    return kind == "chief" or (kind == "worker" and index == 0 and "chief" not in config["cluster"])


def make_strategy(name: str, log: Callable[[str], None] = print) -> tf.distribute.Strategy | None:
    """The tf.distribute strategy called `name`, or None for the default (no strategy).

    A multi-worker strategy must exist before TensorFlow runs anything (it sets up the
    collective ops of the whole process), so call this before building a model. It waits until
    every task of the cluster has started, saying so with `log` first (see `_waiting_for_cluster`).
    """
    if name == "default":
        return None
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()  # every local GPU; the CPU where there is none
    if name != "multiworker":
        raise CharseqError(f"--strategy must be one of {', '.join(STRATEGIES)}, not {name!r}")
    config = _tf_config()
    if config is None:
        raise CharseqError('--strategy multiworker needs TF_CONFIG, e.g. {"cluster": {"worker": '
                           '["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}')
    # AUTO: NCCL between GPUs, ring all-reduce over gRPC between CPUs.
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.AUTO)
    logger = tf.get_logger()
    if not any(isinstance(f, _CollectiveNotices) for f in logger.filters):
        logger.addFilter(_CollectiveNotices())
    try:
        with _waiting_for_cluster(config, log):
            return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    except (RuntimeError, ValueError, tf.errors.OpError) as e:
        first = (str(e).strip().splitlines() or [""])[0]
        raise CharseqError(f"cannot start the multi-worker strategy from TF_CONFIG: {first}") from None


class _CollectiveNotices(logging.Filter):
    """Drops TensorFlow's warnings on how a multi-worker strategy runs its collective ops outside a
    compiled step ("Using CollectiveAllReduceStrategy eagerly has significant overhead", "calls to
    CollectiveAllReduce._batch_all_gather ... triggered tf.function retracing"): charseq does so by
    design, once per checkpoint (the gather of every worker's rows), and a user can do nothing about
    them, yet they filled the terminal of every multi-worker run."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("CollectiveAllReduce" in message and ("eagerly" in message or "retracing" in message))


@contextmanager
def _waiting_for_cluster(config: dict, log: Callable[[str], None]):
    """While TensorFlow waits for the other tasks of the cluster (for as long as one is missing: a
    worker not started, a wrong address), it holds Python's interpreter, so no Python signal handler
    runs and Ctrl-C would be ignored: meanwhile it ends the process, as it does any program by
    default. Nothing is lost: nothing has trained yet, and a new run is still only a hidden build,
    which the next run at its --out deletes. SIGTERM is set to end it too, but TensorFlow's
    coordination service installs its own handler for it as the wait begins (a notice of preemption,
    which only sets a flag), and no Python code runs until the wait ends to set it back."""
    cluster, task = config["cluster"], config["task"]
    index = task.get("index", 0)
    tasks = sum(len(addresses) for addresses in cluster.values())
    address = _addresses(cluster, task["type"])[index]
    log(f"joining the {tasks} tasks of TF_CONFIG's cluster as {task['type']} {index} ({address}): waiting until "
        "every one of them has started (Ctrl-C stops)")
    if threading.current_thread() is not threading.main_thread():  # only the main thread sets handlers
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_DFL) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def num_replicas(strategy) -> int:
    return strategy.num_replicas_in_sync if strategy is not None else 1


def scope(strategy):
    """Where the model and optimizer are built: their variables become one copy per replica."""
    return strategy.scope() if strategy is not None else nullcontext()


def check_batch(strategy, batch_size: int) -> None:
    """Each replica reads an equal share of every global batch."""
    replicas = num_replicas(strategy)
    if batch_size % replicas:
        raise CharseqError(f"--batch-size {batch_size} (the global batch) must be divisible by the "
                           f"{replicas} replicas in sync")


def prepare_optimizer(strategy, optimizer) -> None:
    """Under a strategy the tasks sum the replicas' gradients themselves, before the optimizer
    sees them, so that global-norm clipping (--clip-norm) measures the gradient of the whole
    global batch, exactly as in a single process. Keras' own summing (done after clipping,
    per replica) must then be off, or the gradients would be counted R times."""
    if strategy is None:
        return
    if not hasattr(optimizer, "_all_reduce_sum_gradients"):
        raise CharseqError("this Keras version's optimizer cannot be used with --strategy (expected "
                           "keras.src.backend.tensorflow.optimizer.TFOptimizer)")
    # Keras 3 has no public switch for this: tf.keras 2 had apply_gradients(experimental_aggregate_gradients=
    # False), Keras 3's TFOptimizer always calls this private hook inside a replica context (checked above,
    # so a Keras that renames it fails in one line instead of double-counting).
    optimizer._all_reduce_sum_gradients = lambda grads_and_vars: list(grads_and_vars)


def shard(strategy, array: np.ndarray):
    """`array` (rows = the global batch) as a per-replica value: replica i gets its equal block of rows."""
    replicas = strategy.num_replicas_in_sync
    rows = len(array) // replicas

    def block(context):
        i = context.replica_id_in_sync_group
        return tf.constant(array[i * rows:(i + 1) * rows])
    return strategy.experimental_distribute_values_from_function(block)


def feed(strategy, array: np.ndarray):
    """A batch array as a step's input: a tensor, or under a strategy each replica's block of rows."""
    return tf.constant(array) if strategy is None else shard(strategy, array)


def pad_rows(strategy, *arrays: np.ndarray) -> tuple:
    """`arrays` (rows = one global batch) with copies of their first row appended up to a
    multiple of the replicas, and the rows' weights (1 for the batch's rows, 0 for the copies).
    Copies of a real row, not zeros: an all-padding text would be an all-masked sequence."""
    rows = len(arrays[0])
    extra = -rows % num_replicas(strategy)
    weights = np.concatenate([np.ones(rows, np.float32), np.zeros(extra, np.float32)])
    if extra:
        arrays = tuple(np.concatenate([a, np.repeat(a[:1], extra, axis=0)]) for a in arrays)
    return (*arrays, weights)


def regularized(loss, model):
    """Inside a replica: the replica's share of the objective, given its share `loss` of the
    global batch's loss: plus its share (1/R) of the model's own losses (the L2 penalty)."""
    if not model.losses:
        return loss
    penalty = tf.add_n(model.losses)
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        penalty = penalty / context.num_replicas_in_sync
    return loss + penalty


def compile_train_step(strategy, model, optimizer, replica_loss, **function_options):
    """One compiled optimisation step for any head, called as `step(learning_rate, *batch)`.

    `replica_loss(*batch)` runs on each replica's rows and returns (objective, reported, kept):
    `objective` is the replica's share of the global batch's objective (the shares sum to it),
    `reported` a tuple of scalars the step returns summed over the replicas (the loss, counts),
    `kept` anything handed back per replica as it is (carried RNN state), or None. The gradients
    are summed over the replicas before the optimizer sees them (see `prepare_optimizer`).
    Without a strategy this is just the compiled replica step.

    `learning_rate` (a float, or None to keep the optimizer's) is set on the optimizer inside the
    compiled step: assigned from Python, it would be an eager op between two compiled steps, which
    a step as short as the MNIST-row classifier's feels.
    """
    def replica_step(*batch):
        with tf.GradientTape() as tape:
            objective, reported, kept = replica_loss(*batch)
        grads = tape.gradient(objective, model.trainable_variables)
        optimizer.apply(sum_over_replicas(grads), model.trainable_variables)
        return reported, kept

    def step(learning_rate, *batch):
        if learning_rate is not None:  # outside strategy.run: one assignment sets every replica's copy
            optimizer.learning_rate.assign(learning_rate)
        if strategy is None:
            return replica_step(*batch)
        reported, kept = strategy.run(replica_step, batch)
        return tuple(strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for v in reported), kept

    compiled = tf.function(step, **function_options)
    # A tensor, not a Python float: tf.function traces a new graph for every Python value it is given.
    return lambda learning_rate, *batch: compiled(
        None if learning_rate is None else tf.constant(learning_rate, tf.float32), *batch)


def per_replica(strategy, make):
    """A per-replica value: `make(replica_index)` on each local replica (may return a nested structure)."""
    return strategy.experimental_distribute_values_from_function(lambda c: make(c.replica_id_in_sync_group))


def gather(strategy, value) -> tf.Tensor:
    """All replicas' rows of a per-replica tensor, in replica order (a collective: every worker calls it).

    TensorFlow's all-gather carries no bfloat16 (the RNN state a mixed_bfloat16 run carries): such a
    tensor travels as float32, which holds every bfloat16 value exactly, and comes back as bfloat16."""
    dtype = strategy.experimental_local_results(value)[0].dtype
    if dtype != tf.bfloat16:
        return strategy.gather(value, axis=0)
    wide = strategy.run(lambda v: tf.cast(v, tf.float32), args=(value,))
    return tf.cast(strategy.gather(wide, axis=0), dtype)


def sum_over_replicas(value):
    """Inside a replica: `value` summed over all replicas (identity without a strategy)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def any_worker(strategy, flag: bool) -> bool:
    """Whether `flag` is true on any worker of a multi-worker run, so that all stop at the same
    step (a Ctrl-C or SIGTERM reaches one process; the others must checkpoint with it)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return flag
    votes = per_replica(strategy, lambda i: tf.constant(1.0 if flag else 0.0))
    return float(strategy.reduce(tf.distribute.ReduceOp.SUM, votes, axis=None)) > 0


def strategy_name(out, resume: bool, settings: dict) -> str:
    """The strategy a train call will use: the one given, else (on --resume) the run's own."""
    name = settings.get("strategy")
    if name is None and resume:
        try:
            name = json.loads((Path(out) / "config.json").read_text(encoding="utf-8"))["train"]["strategy"]
        except (OSError, ValueError, KeyError, TypeError):
            name = None  # a missing or damaged run: reopen_run says so in its own words
    return name or "default"


@contextmanager
def worker_run_dir(out, resume: bool, settings: dict):
    """The run directory this process writes: `out` itself, except on a non-chief worker of a
    multi-worker run, which writes a private copy (a temporary directory, deleted at the end,
    or $CHARSEQ_WORKER_DIR, kept). On --resume that copy starts from the chief's run in `out`;
    its data/ is linked, not copied."""
    name = strategy_name(out, resume, settings)
    if name == "multiworker" and _tf_config() is None:
        make_strategy(name)  # says what TF_CONFIG must hold, before anything is written
    if name != "multiworker" or is_chief():
        yield out
        return
    kept = os.environ.get(WORKER_DIR_ENV)
    parent = Path(kept) if kept else Path(tempfile.mkdtemp(prefix="charseq-worker-"))
    mine = parent / Path(out).name
    try:
        if mine.exists():  # a kept copy from an earlier run; never anything else
            if not (mine / "config.json").exists():
                raise CharseqError(f"{mine} is not a charseq run directory; refusing to replace it")
            shutil.rmtree(mine)
        if resume:
            source = Path(out)
            if not (source / "config.json").exists():
                raise CharseqError(f"{out} is not a charseq run directory the chief wrote; on several "
                                   "machines --out must be on a shared filesystem (or copied to each)")
            shutil.copytree(source, mine, ignore=shutil.ignore_patterns("data", "logs"))
            if (source / "data").exists():
                (mine / "data").symlink_to((source / "data").resolve(), target_is_directory=True)
        yield mine
    except Interrupted as e:  # point at the checkpoint a resume reads: the chief's
        raise type(e)(str(e).replace(str(mine), str(out))) from None
    finally:
        if not kept:
            shutil.rmtree(parent, ignore_errors=True)


def train_on_worker(out, resume: bool, settings: dict, train_fn) -> RunDir:
    """`train_fn(directory)` run in this worker's run directory (see `worker_run_dir`); returns
    the run in `out` (the chief's), whichever worker this is."""
    with worker_run_dir(out, resume, settings) as mine:
        run = train_fn(mine)
    return run if Path(mine) == Path(out) else RunDir(out)
