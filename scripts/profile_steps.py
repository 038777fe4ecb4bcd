"""Where the time of the compiled steps goes: generation, the MNIST-row step, the recurrence's paths.

    .venv/bin/python scripts/profile_steps.py [--only generation|mnist|recurrence]

0. One generated character of the default 2x256 LSTM language model (65 characters, untrained),
   batch 1 and 32, built up piece by piece inside one compiled `tf.while_loop` of 500 steps: the
   two layers' step ops alone, then with the output layer, then with the draw (the sampler's own
   `pick`), against the whole `Generator` loop; with the FLOPs of one character and the share of
   the float32 matmul peak (--peak, GFLOP/s on all cores) the whole loop reaches. With --only
   generation TensorFlow runs its ops from one thread, as `charseq generate --num-samples N` does.
1. One LSTM layer's recurrent step (2x256 generation's shape, batch 1 and 32), 500 steps in one
   compiled `tf.while_loop`: the step op generation runs (`charseq_lstm_step`, U packed once, in
   float32 and bfloat16), the kernel's sequence forward op called on a sequence of length 1 (which
   packs U at every call), and the same step written as TensorFlow ops (h U + x W b, split,
   sigmoid/tanh), as Keras' LSTMCell computes it; each with its share of the matmul peak.
2. The MNIST-row classifier (28 steps of 128 units, batch 128, in --precision): the parts of one
   training step, each a compiled call of its own (median of 40), against the whole step; then the
   step's own TensorFlow ops as TensorFlow's profiler timed them over 50 whole steps (ms per step,
   the 15 largest). Then, where PyTorch is installed (the bench extra), PyTorch's step of
   scripts/bench.py (bf16 autocast with --precision mixed_bfloat16) likewise: the whole step, and its
   ops' own time (self CPU time) as torch.profiler timed them over 50 steps.
3. The recurrence of a language model's training step (batch 64 x 100 steps, LSTM and GRU of 256
   and 512 units): the kernel's forward and backward sequence ops alone, on each path of its
   product this CPU has (float32; bfloat16 on AVX512-BF16 dot products; bfloat16 on AMX tiles),
   best of 15 calls, with the products' GFLOP/s (h U forward, dz U^T backward; the gate arithmetic
   and the sequences' memory traffic run in the same time) and their share of the matmul peak in
   the path's precision (--peak, --peak-bf16).
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]  # charseq; bench.py

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from charseq import kernels  # noqa: E402


def timed_ms(run, reps: int, warmup: int = 1) -> list[float]:
    """Milliseconds of `reps` calls of `run`, after `warmup` untimed ones."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        run()
        times.append(1e3 * (time.perf_counter() - t))
    return times


def median_ms(run, reps: int = 40) -> float:
    return statistics.median(timed_ms(run, reps, warmup=3))


def generation_loop(peak: float, units: int = 256, layers: int = 2, steps: int = 500) -> None:
    from charseq.heads.lm.inference import Generator
    from charseq.heads.lm.run import build_model
    from charseq.vocab import CharVocab

    vocab = CharVocab.build("".join(chr(c) for c in range(32, 97)))  # 65 characters + the specials
    tf.keras.utils.set_random_seed(0)
    model = build_model(dict(cell="lstm", units=units, layers=layers), vocab.size, "float32")
    # Products per character: the first layer's h U (its x W is a row of a table), the others' x W
    # and h U, the output layer.
    flops = 2 * 4 * units * units + (layers - 1) * 2 * 4 * units * 2 * units + 2 * units * vocab.size
    precisions = ["float32"] + (["mixed_bfloat16"] if kernels.native_bf16() else [])
    print(f"one generated character, LSTM {layers}x{units}, vocabulary {vocab.size}: {flops / 1e6:.2f} MFLOP "
          f"per sample; us per step of the whole batch (best of 9 runs of {steps} steps):")
    for batch in (1, 32):
        for precision in precisions:
            generator = Generator(model, vocab, None if precision == "float32" else precision)
            step, head = generator.step_and_head()  # as the sampler runs them
            token, states = tf.zeros([batch], tf.int32), model.zero_state(batch)
            one = tf.constant(1.0)

            def logits_of(token, states):
                return model.step(token, states, step, head)

            def parts(i, token, states):
                return {"step ops of the layers": lambda: (token, step(token, states)[1]),
                        "+ output layer": lambda: (lambda logits, s: (
                            token + tf.cast(logits[:, 0] > 1e30, tf.int32), s))(*logits_of(token, states)),
                        "+ draw": lambda: (lambda logits, s: (
                            generator.pick(logits, one, None, None, tf.stack([0, i + 1]), False), s))(
                                *logits_of(token, states))}

            for name in parts(0, token, states):
                loop = tf.function(lambda token, states, name=name: tf.while_loop(
                    lambda i, *_: i < steps, lambda i, t, s: (i + 1, *parts(i, t, s)[name]()),
                    (0, token, states))[1:])  # every output used: nothing is pruned from the loop
                us = 1e3 * best_ms(lambda: tf.nest.map_structure(lambda t: t.numpy(), loop(token, states))) / steps
                print(f"  batch {batch:2d} {precision}, {name}: {us:.1f}")
            us = 1e3 * best_ms(lambda: generator("ROMEO:", length=steps, seed=0, num_samples=batch)) / steps
            share = f", {100 * batch * flops / us / 1e3 / peak:.0f}% of {peak:.0f}" if precision == "float32" else ""
            print(f"  batch {batch:2d} {precision}, the whole Generator loop: {us:.1f} ({batch / us * 1e6:,.0f} chars/s, "
                  f"{batch * flops / us / 1e3:.0f} GFLOP/s{share})")


def best_ms(run, reps: int = 9) -> float:
    return min(timed_ms(run, reps))


def generation_step(ops, units: int = 256, steps: int = 500) -> None:
    for batch in (1, 32):
        xproj = tf.random.normal([batch, 4 * units])
        recurrent = tf.random.normal([units, 4 * units]) * 0.05
        h0, c0, no_mask, no_input = tf.zeros([batch, units]), tf.zeros([batch, units]), tf.zeros([0]), tf.zeros([0, 0])
        flops = 2 * batch * units * 4 * units
        no_bias = tf.zeros([4 * units])

        def step_op(recurrence, dtype):
            packed = ops.charseq_pack_weights(recurrent, gates=4, T=dtype, recurrence=recurrence)
            return lambda h, c: ops.charseq_lstm_step(no_input, tf.zeros([0], dtype), xproj, packed, h, c,
                                                      recurrence=recurrence)

        def sequence_op(h, c):
            return ops.charseq_lstm_forward(xproj[:, None], recurrent, no_bias, h, c, no_mask)[4:]

        def tf_ops(h, c):
            i, f, g, o = tf.split(tf.matmul(h, recurrent) + xproj, 4, axis=1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            return tf.sigmoid(o) * tf.tanh(c), c

        variants = [("step op, U packed once, float32", step_op("float32", tf.float32)),
                    ("kernel sequence op, length 1", sequence_op), ("TensorFlow ops", tf_ops)]
        if kernels.native_bf16():
            variants.insert(1, ("step op, U packed once, bfloat16", step_op("bfloat16", tf.bfloat16)))
        for name, step in variants:
            loop = tf.function(lambda h, c, step=step: tf.while_loop(
                lambda i, *_: i < steps, lambda i, h, c: (i + 1, *step(h, c)), (0, h0, c0))[1])
            ms = median_ms(lambda: loop(h0, c0).numpy(), reps=5)
            us = 1e3 * ms / steps
            print(f"generation step, LSTM {units} units, batch {batch}, {name}: {us:.1f} us "
                  f"({flops / us / 1e3:.0f} GFLOP/s in h U)")


def mnist_step(ops, precision: str = "float32") -> None:
    from charseq.compiled_lstm import input_dtype, input_product, matmul_for
    from charseq.heads.classifier.run import build_model
    from charseq.heads.classifier.task import ImageTask
    from charseq.train import TrainConfig, make_optimizer

    batch, rows, units, features = 128, 28, 128, 64
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (8 * batch, rows, 28), dtype=np.uint8), rng.integers(0, 10, 8 * batch)
    model = build_model(dict(units=units), 10, None, precision)
    task = ImageTask(model, images, labels, images[:batch], labels[:batch], batch, seed=0)
    optimizer = make_optimizer(TrainConfig(lr=1e-3))
    optimizer.build(model.trainable_variables)
    x, y = tf.constant(images[:batch].astype(np.float32) / 255), tf.constant(labels[:batch])
    step = iter(range(10**9))
    recurrence = model.backbone.recurrence
    print(f"MNIST-row step in {precision} (impl {'compiled' if model.backbone.use_compiled else 'keras'}, "
          f"recurrence {recurrence}), ms:")
    print(f"  whole training step: {median_ms(lambda: float(task.train_step(next(step), optimizer))):.2f}")
    op_times = profiled_op_ms(lambda: float(task.train_step(next(step), optimizer)), 50)

    @tf.function
    def gradients(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        return tape.gradient(loss, model.trainable_variables)

    forward = tf.function(lambda x: model(x, training=True))
    print(f"  forward: {median_ms(lambda: forward(x).numpy()):.2f}")
    print(f"  forward + backward: {median_ms(lambda: [g.numpy() for g in gradients(x, y)]):.2f}")
    grads = gradients(x, y)
    apply = tf.function(lambda g: optimizer.apply(g, model.trainable_variables))
    print(f"  Adam with clipping: {median_ms(lambda: (apply(grads), model.trainable_variables[0].numpy())):.2f}")
    # The recurrence's own ops and products at this shape (random weights).
    xs = tf.random.normal([batch, rows, features])
    kernel, recurrent = tf.random.normal([features, 4 * units]) * 0.1, tf.random.normal([units, 4 * units]) * 0.1
    h0, c0, no_mask = tf.zeros([batch, units]), tf.zeros([batch, units]), tf.zeros([0])
    matmul = matmul_for(recurrence)
    project = tf.function(lambda x: tf.reshape(input_product(tf.reshape(x, [-1, features]), kernel, recurrence),
                                               [batch, rows, -1]))
    xproj = project(xs)
    io = input_dtype(recurrence)
    bias = tf.zeros([4 * units])
    run = tf.function(lambda xp: ops.charseq_lstm_forward(xp, recurrent, bias, h0, c0, no_mask, recurrence=recurrence,
                                                          io=io))
    out = run(xproj)
    back = tf.function(lambda o: ops.charseq_lstm_backward(recurrent, c0, no_mask, o[2], o[3], tf.ones_like(o[0]),
                                                           tf.ones_like(h0), tf.zeros_like(c0),
                                                           recurrence=recurrence))
    dz = tf.random.normal([batch * rows, 4 * units])
    products = tf.function(lambda dz: (matmul(tf.reshape(out[1], [-1, units]), dz, transpose_a=True),
                                       matmul(tf.reshape(xs, [-1, features]), dz, transpose_a=True),
                                       matmul(dz, kernel, transpose_b=True)))
    print(f"  input projection x W (one product): {median_ms(lambda: project(xs).numpy()):.2f}")
    print(f"  forward op (28 steps): {median_ms(lambda: run(xproj)[4].numpy()):.2f}")
    print(f"  backward op (28 steps): {median_ms(lambda: back(out)[1].numpy()):.2f}")
    print(f"  weight and input gradient products: {median_ms(lambda: [t.numpy() for t in products(dz)]):.2f}")
    print(f"the training step's ops, profiled (ms per step; {sum(op_times.values()):.2f} in all ops):")
    for name, ms in sorted(op_times.items(), key=lambda item: -item[1])[:15]:
        print(f"  {ms:6.3f}  {name}")


def torch_mnist_step(precision: str) -> None:
    """PyTorch's MNIST-row step, as scripts/bench.py runs it, where PyTorch is installed."""
    try:
        import torch
    except ImportError:
        print("PyTorch's MNIST-row step: PyTorch is not installed (pip install -e '.[bench]')")
        return
    from torch.profiler import ProfilerActivity, profile

    from bench import cores, torch_mnist_step as make_step

    torch.set_num_threads(cores())
    batch, units, bf16 = 128, 128, precision == "mixed_bfloat16"
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (8 * batch, 28, 28), dtype=np.uint8), rng.integers(0, 10, 8 * batch)
    step, steps = make_step(torch, images, labels, batch, units, bf16, rng), 50
    print(f"PyTorch's MNIST-row step ({'bf16 autocast' if bf16 else 'float32'}), ms:")
    print(f"  whole training step: {median_ms(lambda: step(0)):.2f}")
    with profile(activities=[ProfilerActivity.CPU]) as trace:
        for i in range(steps):
            step(i)
    events = sorted(trace.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events) / 1e3 / steps
    print(f"its ops, profiled (self CPU ms per step; {total:.2f} in all ops):")
    for event in events[:10]:
        print(f"  {event.self_cpu_time_total / 1e3 / steps:6.3f}  {event.key} ({event.count // steps} a step)")


def profiled_op_ms(run, steps: int) -> dict[str, float]:
    """Milliseconds per call of `run` in each TensorFlow op it runs ("name:type"), from TensorFlow's
    profiler (its XPlane trace, read with the protobuf module TensorFlow ships)."""
    import tempfile

    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(steps):
            run()
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        space.ParseFromString(next(Path(logdir).rglob("*.xplane.pb")).read_bytes())
    times: dict[str, float] = {}
    for plane in space.planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                name = names.get(event.metadata_id, "")
                if ":" in name and "::" not in name and not name.startswith("Eager"):  # an op, not a framework span
                    times[name] = times.get(name, 0.0) + event.duration_ps / 1e9 / steps
    return times


def recurrence_paths(ops, peak: float, peak_bf16: float, batch: int = 64, steps: int = 100) -> None:
    paths = [("float32", "float32", peak)]
    if kernels.native_bf16():
        paths.append(("bfloat16_avx512", "bfloat16, AVX512-BF16 dot products", peak_bf16))
    if kernels.native_tiles():
        paths.append(("bfloat16", "bfloat16, AMX tiles", peak_bf16))
    rng = np.random.default_rng(0)

    def constant(*shape, scale=1.0):
        return tf.constant(rng.normal(scale=scale, size=shape).astype(np.float32))

    print(f"the recurrence of one layer, batch {batch} x {steps} steps, ms per op call (best of 15):")
    for cell, gates in (("lstm", 4), ("gru", 3)):
        for units in (256, 512):
            xproj, recurrent = constant(batch, steps, gates * units), constant(units, gates * units, scale=units ** -0.5)
            h0, d_out, no_mask = tf.zeros([batch, units]), constant(batch, steps, units), tf.zeros([0])
            bias = tf.zeros([gates * units])
            gflop = 2 * batch * steps * units * gates * units / 1e9  # of one pass's product
            base = None
            for recurrence, name, path_peak in paths:
                # x W in float32; the outputs and their gradient, and the gates' gradients out in
                # bfloat16 on the bfloat16 paths, as the layers run
                io = tf.float32 if recurrence == "float32" else tf.bfloat16
                xp, d_o = xproj, tf.cast(d_out, io)
                if cell == "lstm":
                    forward = lambda r=recurrence, xp=xp, io=io: ops.charseq_lstm_forward(  # noqa: E731
                        xp, recurrent, bias, h0, h0, no_mask, recurrence=r, io=io)
                    out = forward()
                    backward = lambda r=recurrence, out=out: ops.charseq_lstm_backward(  # noqa: E731
                        recurrent, h0, no_mask, out[2], out[3], d_o, h0, h0, recurrence=r)
                else:
                    forward = lambda r=recurrence, xp=xp, io=io: ops.charseq_gru_forward(  # noqa: E731
                        xp, recurrent, bias, bias, h0, no_mask, recurrence=r, io=io)
                    out = forward()
                    backward = lambda r=recurrence, out=out: ops.charseq_gru_backward(  # noqa: E731
                        recurrent, no_mask, out[1], out[2], d_o, h0, recurrence=r)
                ms = [min(timed_ms(lambda f=f: f()[0].numpy(), 15, warmup=2)) for f in (forward, backward)]
                base = base or sum(ms)
                print(f"  {cell} {units}, {name}: forward {ms[0]:.1f} ({gflop / ms[0] * 1e3:.0f} GFLOP/s, "
                      f"{100 * gflop / ms[0] * 1e3 / path_peak:.0f}% of {path_peak:.0f}), backward {ms[1]:.1f} "
                      f"({gflop / ms[1] * 1e3:.0f} GFLOP/s); both {base / sum(ms):.2f}x float32's speed")


def matmul_peaks() -> dict:
    """This machine's float32 and bfloat16 matmul peaks in GFLOP/s, TensorFlow's square products on all
    cores, as scripts/bench.py measures them (its 'matmul' row)."""
    from bench import worker_matmul

    return worker_matmul(dict(framework="charseq", n=2048, reps=5))["gflops"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("generation", "mnist", "recurrence"),
                        help="Only the generation parts (0, 1), MNIST (2) or the recurrence's paths (3).")
    parser.add_argument("--precision", default="float32", choices=("float32", "mixed_bfloat16"),
                        help="The MNIST-row model's precision (2).")
    parser.add_argument("--peak", type=float,
                        help="The float32 matmul peak in GFLOP/s on all cores [default: measured here, as "
                        "scripts/bench.py --only matmul does].")
    parser.add_argument("--peak-bf16", type=float,
                        help="The bfloat16 matmul peak in GFLOP/s on all cores [default: measured here].")
    args = parser.parse_args()
    # Alone, the generation parts run TensorFlow's ops from one thread, as `charseq generate
    # --num-samples N` does (before anything starts TensorFlow's thread pools).
    from charseq.heads.lm.inference import sample_on_one_op_thread

    one_op_thread = args.only == "generation" and sample_on_one_op_thread()
    ops = kernels.load()
    if ops is None:
        sys.exit("the compiled kernels are not available here")
    if args.only in (None, "generation", "recurrence") and (args.peak is None or args.peak_bf16 is None):
        measured = matmul_peaks()
        args.peak, args.peak_bf16 = args.peak or measured["float32"], args.peak_bf16 or measured["bfloat16"]
        print(f"matmul peak measured here: float32 {measured['float32']:.0f} GFLOP/s, "
              f"bfloat16 {measured['bfloat16']:.0f}")
    if args.only in (None, "generation"):
        if one_op_thread:
            print("TensorFlow's ops from one thread, as `charseq generate --num-samples N` runs them")
        else:
            print("TensorFlow's ops from one thread per core, as `charseq generate` runs one sample's")
        generation_loop(args.peak)
        generation_step(ops)
    if args.only in (None, "mnist"):
        mnist_step(ops, args.precision)
        torch_mnist_step(args.precision)
    if args.only in (None, "recurrence"):
        recurrence_paths(ops, args.peak, args.peak_bf16)


if __name__ == "__main__":
    main()
