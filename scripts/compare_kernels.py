"""A change to the compiled recurrence, timed against a git revision side by side in one process.

    .venv/bin/python scripts/compare_kernels.py [REV] [--against REV2] [--cell lstm|gru] [--units 128]
        [--batch 128] [--steps 28] [--recurrence bfloat16] [--calls 300]

On a shared machine the kernels' speed moves more from one minute to the next (15-50% has been
seen) than most changes to them are worth, so two runs one after the other cannot tell a few
percent apart. This builds the cell's forward and backward ops twice, from charseq/kernels at REV
(default HEAD) and from the working tree (or from REV2), as two libraries whose ops and C++
symbols are renamed so that both load into one TensorFlow; checks that they compute the same
outputs; then calls the two versions in alternation on the same input tensors, so that whatever
the machine does falls on both alike. It prints, for the forward and the backward op, each
version's median and 10th percentile (ms per call) and the second version's time over the first's:
the ratio of the medians and the median of the per-pair ratios. Two builds of the same sources
come out within about 3% of each other (`HEAD --against HEAD`): a difference needs to repeat
beyond that to count. The default shape is the MNIST-row classifier's recurrence (128 units,
batch 128, 28 steps).
"""

import argparse
import functools
import inspect
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(Path(__file__).resolve().parent)]  # charseq; bench.py

import numpy as np  # noqa: E402


def kernel_sources(rev: str | None, cell: str, into: Path) -> None:
    """The cell's source and the shared headers of charseq/kernels at `rev` (None: the working
    tree) written to `into`."""
    into.mkdir(parents=True)
    if rev is None:
        names = [p.name for p in (REPO / "charseq" / "kernels").iterdir()]
        read = lambda name: (REPO / "charseq" / "kernels" / name).read_text()  # noqa: E731
    else:
        listing = subprocess.run(["git", "-C", str(REPO), "ls-tree", "--name-only", rev, "charseq/kernels/"],
                                 capture_output=True, text=True, check=True)
        names = [Path(p).name for p in listing.stdout.split()]
        read = lambda name: subprocess.run(  # noqa: E731
            ["git", "-C", str(REPO), "show", f"{rev}:charseq/kernels/{name}"],
            capture_output=True, text=True, check=True).stdout
    for name in names:
        if name.endswith(".h") or name == f"{cell}.cc":
            (into / name).write_text(read(name))


def build(tf, sources: Path, cell: str, tag: str):
    """The cell's ops built from `sources` with every op name "Charseq..." as "Charseq<tag>..." and
    namespace charseq as charseq_<tag>; the loaded module."""
    from charseq.kernels import _compile_command, _link_command, compiler

    source = sources / f"{cell}.cc"
    text = source.read_text()
    if '"Charseq' not in text:
        sys.exit(f"compare_kernels: no op named Charseq... in {cell}.cc")
    source.write_text(text.replace('"Charseq', f'"Charseq{tag}'))
    obj, library = sources / f"{cell}.o", sources / f"{cell}.so"
    for command in (_compile_command(tf, compiler(), source, obj) + [f"-Dcharseq=charseq_{tag.lower()}"],
                    _link_command(tf, compiler(), [obj], library)):
        try:
            done = subprocess.run(command, capture_output=True, text=True)
        except OSError as error:
            sys.exit(f"compare_kernels: cannot run {command[0]}: {error.strerror}")
        if done.returncode != 0:
            sys.exit(f"compare_kernels: building {sources.name} failed:\n{done.stderr[-3000:]}")
    return tf.load_op_library(str(library))


def inputs(tf, cell: str, units: int, batch: int, steps: int, recurrence: str):
    """Random x W (float32) and U, zero biases and states: the same tensors for both versions (with
    inputs of their own, where the buffers happen to sit moved two builds of the same sources apart
    by 4%)."""
    gates = 4 if cell == "lstm" else 3
    rng = np.random.default_rng(0)
    xproj = tf.constant(rng.normal(size=(batch, steps, gates * units)), tf.float32)
    recurrent = tf.constant(rng.normal(size=(units, gates * units)) * 0.1, tf.float32)
    return xproj, recurrent, tf.zeros([gates * units]), tf.zeros([batch, units]), tf.zeros([0])


def op_calls(tf, module, tag: str, cell: str, recurrence: str, xproj, recurrent, bias, h0, no_mask):
    """For "forward" and "backward", (call, outputs) of one built version: a call to time, and one
    that returns every output as float32 numpy arrays."""
    name = f"charseq_{tag.lower()}_{cell}"
    from charseq.compiled_lstm import input_dtype

    forward_op, backward_op = getattr(module, f"{name}_forward"), getattr(module, f"{name}_backward")
    io = input_dtype(recurrence)
    # Builds since x W is read in float32 take the outputs' type as `io`; older ones read x W in it.
    if "Float32" in str(inspect.signature(forward_op).parameters["xproj"].annotation):
        forward_op = functools.partial(forward_op, io=io)
    else:
        xproj = tf.cast(xproj, io)
    if cell == "lstm":
        forward = tf.function(lambda: forward_op(xproj, recurrent, bias, h0, h0, no_mask, recurrence=recurrence))
        out = forward()
        backward = tf.function(lambda: backward_op(recurrent, h0, no_mask, out[2], out[3], tf.ones_like(out[0]),
                                                   tf.ones_like(h0), h0, recurrence=recurrence))
    else:
        forward = tf.function(lambda: forward_op(xproj, recurrent, bias, bias, h0, no_mask, recurrence=recurrence))
        out = forward()
        backward = tf.function(lambda: backward_op(recurrent, no_mask, out[1], out[2], tf.ones_like(out[0]),
                                                   tf.ones_like(h0), recurrence=recurrence))
    # Timed: the call, with one small output (the last state, or its gradient) fetched; checked: all.
    state = 4 if cell == "lstm" else 3
    every = lambda call: [np.asarray(tf.cast(t, tf.float32)) for t in call()]  # noqa: E731
    return {"forward": (lambda: forward()[state].numpy(), lambda: every(forward)),
            "backward": (lambda: backward()[1 if cell == "lstm" else 2].numpy(), lambda: every(backward))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rev", nargs="?", default="HEAD", help="The git revision to compare against (HEAD).")
    parser.add_argument("--against", metavar="REV2", help="Time this revision instead of the working tree.")
    parser.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=28)
    parser.add_argument("--recurrence", default="bfloat16", help="float32, bfloat16, ... (charseq.kernels.RECURRENCES)")
    parser.add_argument("--calls", type=int, default=300, help="Calls of each op per version.")
    args = parser.parse_args()
    if min(args.units, args.batch, args.steps, args.calls) < 1:
        sys.exit("compare_kernels: --units, --batch, --steps and --calls must be at least 1")
    commits = {}  # each revision given, as its short commit hash
    for rev in filter(None, (args.rev, args.against)):
        found = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", "--quiet", "--short",
                                f"{rev}^{{commit}}"], capture_output=True, text=True)
        if found.returncode != 0:
            sys.exit(f"compare_kernels: {rev!r} is not a revision of this repository")
        commits[rev] = found.stdout.strip()

    import tensorflow as tf

    from charseq.kernels import RECURRENCES

    if args.recurrence not in RECURRENCES:
        sys.exit(f"compare_kernels: --recurrence must be one of {', '.join(RECURRENCES)}")
    work = Path(tempfile.mkdtemp(prefix="charseq-compare-"))
    try:
        modules = {}
        for tag, rev in (("A", args.rev), ("B", args.against)):
            kernel_sources(rev, args.cell, work / tag)
            modules[tag] = build(tf, work / tag, args.cell, tag)
        shared = inputs(tf, args.cell, args.units, args.batch, args.steps, args.recurrence)
        versions = {tag: op_calls(tf, module, tag, args.cell, args.recurrence, *shared)
                    for tag, module in modules.items()}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    from bench import cores
    from charseq.precision import cpu_info

    second = f"{args.against} ({commits[args.against]})" if args.against else "the working tree"
    print(f"{args.cell.upper()} {args.units} units, batch {args.batch}, {args.steps} steps, recurrence "
          f"{args.recurrence}; {cpu_info()[0]}, {cores()} cores; A = {args.rev} ({commits[args.rev]}), B = {second}")
    for op in ("forward", "backward"):
        a, b = versions["A"][op][1](), versions["B"][op][1]()
        difference = max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))
        times = {"A": [], "B": []}
        for tag in ("A", "B"):
            versions[tag][op][0]()  # traced and warm
        for call in range(args.calls):
            for tag in ("A", "B") if call % 2 else ("B", "A"):
                start = time.perf_counter()
                versions[tag][op][0]()
                times[tag].append(time.perf_counter() - start)
        ta, tb = np.array(times["A"]) * 1e3, np.array(times["B"]) * 1e3
        print(f"  {op:8s} A median {np.median(ta):.3f} p10 {np.percentile(ta, 10):.3f} | "
              f"B median {np.median(tb):.3f} p10 {np.percentile(tb, 10):.3f} | "
              f"B/A {np.median(tb) / np.median(ta):.3f}, "
              f"per pair {np.median(tb / ta):.3f} | outputs differ by at most {difference:.3g}")


if __name__ == "__main__":
    main()
