"""Generation on the compiled step ops against generation on Keras' cell (the path where the kernel
is not available): the same seed gives the same text, beam search the same hypotheses, the
encoder-decoder the same outputs; in bfloat16 the next-character distributions stay close. The
precision a user asks for (`precision=`, `--precision`) reaches the step ops, or is refused in one line."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from charseq import compiled_step, kernels
from charseq.errors import CharseqError
from charseq.heads.lm import beam, inference
from charseq.heads.lm.model import LanguageModel
from charseq.heads.seq2seq import inference as seq2seq_inference
from charseq.heads.seq2seq.model import Seq2Seq
from charseq.settings import BackboneConfig
from charseq.vocab import CharVocab, banned_ids
from helpers import assert_clean_error, run_cli_in_process

pytestmark = pytest.mark.skipif(not kernels.available() and os.environ.get("CHARSEQ_TEST_FRESH_BUILD") != "1",
                                reason="the kernel could not be built here")
TEXT = "the quick brown fox jumps over the lazy dog\n" * 3


def _lm(cell):
    keras.utils.set_random_seed(3)
    vocab = CharVocab.build(TEXT)
    model = LanguageModel(vocab.size, BackboneConfig(cell=cell, units=48, layers=2, embedding_dim=8,
                                                     precision="float32"))
    model(tf.zeros([1, 2], tf.int32))
    # Larger weights than the initialisers' make sharper, more varied distributions to compare.
    for w in model.backbone.weights:
        w.assign(w * 3.0)
    return model, vocab


@pytest.fixture
def keras_step(monkeypatch):
    """Generation as it runs without the kernel: every step on Keras' cell."""
    for module in (inference, seq2seq_inference):
        monkeypatch.setattr(module, "pack", lambda *args, **kwargs: None)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_same_seed_same_text_with_and_without_the_step_ops(cell, monkeypatch):
    model, vocab = _lm(cell)
    assert compiled_step.pack(model.backbone) is not None
    options = dict(length=120, seed=5, num_samples=3, temperature=1.2)
    on_kernel = inference.Generator(model, vocab)("the ", **options)
    streamed, generator = [], inference.Generator(model, vocab)
    packed, pack = [], generator.packed
    monkeypatch.setattr(generator, "packed", lambda: packed.append(pack()) or packed[-1])
    assert generator("the ", **options, on_text=streamed.append) == on_kernel
    assert len(streamed) > 3 and len(packed) == 1  # in chunks, on weights packed once for them all
    greedy = inference.Generator(model, vocab)("the ", length=60, greedy=True)
    # The prompt is read once for all the samples: each carries on from the same state.
    assert inference.Generator(model, vocab)("the ", length=60, greedy=True, num_samples=3) == greedy * 3
    monkeypatch.setattr(inference, "pack", lambda *args, **kwargs: None)
    # float32 products in another order: the probabilities agree to ~1e-7, far from moving a draw.
    assert inference.Generator(model, vocab)("the ", **options) == on_kernel
    assert inference.Generator(model, vocab)("the ", length=60, greedy=True) == greedy
    assert len(set(on_kernel)) == 3 and all(len(t) == 120 for t in on_kernel)


@pytest.mark.parametrize("recurrence,tolerance", [("float32", 1e-5), ("bfloat16_emulated", 2e-2)])
def test_next_character_distributions(recurrence, tolerance):
    """Twenty steps of the same tokens: the softmax of each step on the step ops against Keras' cell."""
    model, vocab = _lm("lstm")
    tokens = tf.constant(vocab.encode("the lazy dog jumps ov")[None].repeat(4, 0))
    _, states = model(tokens[:, :1])
    kernel_step = compiled_step.stepper(model.backbone, compiled_step.pack(model.backbone, recurrence), recurrence)
    ours, theirs = states, states
    for t in range(1, 21):
        a, ours = model.step(tokens[:, t], ours, kernel_step)
        b, theirs = model.step(tokens[:, t], theirs)
        diff = np.max(np.abs(tf.nn.softmax(a).numpy() - tf.nn.softmax(b).numpy()))
        assert diff < tolerance, (t, diff)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_bfloat16_model_carries_its_states_in_float32(cell):
    """The step ops compute the states in float32, and a bfloat16 model's sampler and beam search carry
    them so, as training's sequence ops do: not rounded to bfloat16 between steps."""
    keras.utils.set_random_seed(3)
    vocab = CharVocab.build(TEXT)
    model = LanguageModel(vocab.size, BackboneConfig(cell=cell, units=48, layers=2, embedding_dim=8,
                                                     precision="mixed_bfloat16"))
    model(tf.zeros([1, 2], tf.int32))
    ids = tf.constant(vocab.encode("the ")[None])
    generator = inference.Generator(model, vocab)
    *_, sampled = generator.sample_fn(ids, tf.constant(2), tf.constant(30), tf.constant(1.0), None, None,
                                      tf.constant(5), False)
    search = beam.BeamSearch(model, vocab)
    *_, searched = search._search_fn(*search._read_fn(ids, tf.constant(3)), tf.constant(30), generator.packed())
    for state in tf.nest.flatten([sampled, searched]):
        assert state.dtype == tf.float32
        assert not np.array_equal(state.numpy(), tf.cast(tf.cast(state, tf.bfloat16), tf.float32).numpy())


def _plain_beam_search(model, vocab, prompt, length, beam):
    """Beam search as a plain loop, as a reader would write it: every step on Keras' cell, the best
    candidates by numpy's stable sort, each hypothesis' tokens carried along as a list."""
    banned = banned_ids(vocab.size)
    logits, states = model(tf.constant(vocab.encode(prompt)[None]))
    log_probs = np.repeat(tf.nn.log_softmax(logits[:, -1] + banned).numpy().astype(np.float64), beam, axis=0)
    states = tf.nest.map_structure(lambda s: tf.repeat(s, beam, axis=0), states)
    scores, texts = np.array([0.0] + [-np.inf] * (beam - 1)), [[] for _ in range(beam)]
    for _ in range(length):
        candidates = (scores[:, None] + log_probs).reshape(-1)
        best = np.argsort(-candidates, kind="stable")[:beam]
        origin, token = best // vocab.size, (best % vocab.size).astype(np.int32)
        scores, texts = candidates[best], [texts[o] + [t] for o, t in zip(origin, token)]
        states = tf.nest.map_structure(lambda s: tf.gather(s, origin), states)
        logits, states = model.step(tf.constant(token), states)
        log_probs = tf.nn.log_softmax(logits + banned).numpy().astype(np.float64)
    return [(vocab.decode(t), s) for t, s in zip(texts, scores) if np.isfinite(s)]


def test_beam_search_finds_the_same_hypotheses(request, monkeypatch):
    """The compiled search, in chunks of 7 steps (the last one partial), finds what the plain loop
    finds, on the step ops and on Keras' cell; a search told to stop ends after the chunk it is in."""
    model, vocab = _lm("gru")
    monkeypatch.setattr(beam.BeamSearch, "CHUNK", 7)
    want = _plain_beam_search(model, vocab, "the ", length=25, beam=4)
    on_kernel = beam.BeamSearch(model, vocab)("the ", length=25, beam=4, n_best=4)
    asked = iter([False, False, True])
    stopped = beam.BeamSearch(model, vocab)("the ", length=25, beam=4, n_best=4, should_stop=lambda: next(asked))
    request.getfixturevalue("keras_step")
    on_cell = beam.BeamSearch(model, vocab)("the ", length=25, beam=4, n_best=4)
    for got in on_kernel, on_cell:
        assert [t for t, _ in got] == [t for t, _ in want]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-5)
    assert len(want) == 4 and len({t for t, _ in want}) == 4
    assert [len(t) for t, _ in stopped] == [1 + 2 * 7] * 4  # the first choice, then two chunks


def test_encoder_decoder_decodes_the_same(request):
    keras.utils.set_random_seed(4)
    source, target = CharVocab.build("abcdefgh"), CharVocab.build("ABCDEFGH")
    model = Seq2Seq(source.size, target.size, BackboneConfig(cell="lstm", units=32, layers=2, embedding_dim=8,
                                                             precision="float32"))
    ids = np.stack([source.encode("abcabc"), source.encode("hgfedc")]).astype(np.int32)
    model((tf.constant(ids), tf.constant(ids)))
    for w in model.decoder.weights:
        w.assign(w * 3.0)
    assert compiled_step.pack(model.decoder) is not None
    decoder = seq2seq_inference.Decoder(model, target)
    results = [decoder.decode(ids, beam=1, max_len=12), decoder.decode(ids, beam=3, n_best=2, max_len=12)]
    request.getfixturevalue("keras_step")
    decoder = seq2seq_inference.Decoder(model, target)
    for got, want in zip(results, [decoder.decode(ids, beam=1, max_len=12),
                                   decoder.decode(ids, beam=3, n_best=2, max_len=12)]):
        assert [[h[0] for h in row] for row in got] == [[h[0] for h in row] for row in want]
        np.testing.assert_allclose([h[1] for row in got for h in row], [h[1] for row in want for h in row],
                                   rtol=1e-4)


def _packed_recurrences(monkeypatch):
    """The recurrence each `pack` call of the sampler and the beam search asks for, recorded as they run."""
    asked = []

    def pack(backbone, recurrence=None):
        asked.append(compiled_step.recurrence_for(backbone, recurrence))
        return compiled_step.pack(backbone, recurrence)
    monkeypatch.setattr(inference, "pack", pack)
    return asked


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_precision_through_the_python_api(cell, monkeypatch):
    """float32 is the float32 model's own text; mixed_bfloat16 runs the bfloat16 products where the CPU
    has AVX512-BF16 (near-identical distributions, so mostly the same greedy text) and is refused elsewhere."""
    model, vocab = _lm(cell)
    options = dict(length=80, seed=5, num_samples=3)
    assert inference.generate(model, vocab, "the ", precision="float32", **options) == \
        inference.generate(model, vocab, "the ", **options)
    if not kernels.native_bf16():
        with pytest.raises(CharseqError, match="AVX512-BF16"):
            inference.Generator(model, vocab, "mixed_bfloat16")
        return
    asked = _packed_recurrences(monkeypatch)
    texts = inference.generate(model, vocab, "the ", precision="mixed_bfloat16", **options)
    assert asked == ["bfloat16"] and len(texts) == 3 and all(len(t) == 80 for t in texts)
    greedy = [inference.generate(model, vocab, "the ", length=40, greedy=True, precision=p)
              for p in ("float32", "mixed_bfloat16")]
    assert sum(a == b for a, b in zip(*greedy)) >= 30, greedy


def test_precision_is_refused_where_it_cannot_apply():
    keras.utils.set_random_seed(3)
    vocab = CharVocab.build(TEXT)
    on_keras = LanguageModel(vocab.size, BackboneConfig(cell="lstm", units=16, layers=1, embedding_dim=4,
                                                        precision="float32", impl="keras"))
    on_keras(tf.zeros([1, 2], tf.int32))
    with pytest.raises(CharseqError, match="needs the compiled step ops"):
        inference.Generator(on_keras, vocab, "mixed_bfloat16")
    assert inference.Generator(on_keras, vocab, "float32").recurrence == "float32"  # its own precision: fine
    with pytest.raises(CharseqError, match="^precision must be one of float32, mixed_bfloat16"):
        inference.Generator(on_keras, vocab, "bfloat16")


def test_generate_precision_through_the_cli(trained_run, monkeypatch):
    args = ["generate", "--model", trained_run, "--prompt", "春", "--length", "60", "--seed", "2", "--num-samples", "3"]
    default = run_cli_in_process(*args)
    assert default.returncode == 0, default.stderr
    assert run_cli_in_process(*args, "--precision", "float32").stdout == default.stdout
    asked = _packed_recurrences(monkeypatch)
    r = run_cli_in_process(*args, "--precision", "mixed_bfloat16")
    if not kernels.native_bf16():
        assert_clean_error(r, "--precision mixed_bfloat16", "AVX512-BF16")
        return
    assert r.returncode == 0, r.stderr
    assert asked == ["bfloat16"] and r.stdout.count("--- sample") == 3
    beam_args = ["generate", "--model", trained_run, "--prompt", "春", "--length", "12", "--beam", "3"]
    asked.clear()
    r = run_cli_in_process(*beam_args, "--precision", "mixed_bfloat16")
    assert r.returncode == 0 and asked == ["bfloat16"], r.stderr
    assert r.stdout.startswith("春") and "--precision" in run_cli_in_process("generate", "--help").stdout


@pytest.mark.parametrize("num_samples,threads", [(2, 1), (1, 0)])
def test_generate_samples_several_on_one_op_thread(trained_run, num_samples, threads):
    """`charseq generate --num-samples N` (N > 1) has TensorFlow run its ops from one inter-op thread,
    set before the model loads (afterwards the pools are fixed); one sample keeps TensorFlow's default (0)."""
    import subprocess
    import sys

    script = ("import sys, tensorflow as tf\n"
              "from charseq.cli import main\n"
              "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
              "print('inter-op threads', tf.config.threading.get_inter_op_parallelism_threads())\n")
    done = subprocess.run([sys.executable, "-c", script, "generate", "-m", str(trained_run), "-n", "5", "--seed", "1",
                           "--num-samples", str(num_samples)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"inter-op threads {threads}"
    assert done.stdout.count("--- sample") == (num_samples if num_samples > 1 else 0)
    # Too late once an op has run: the call says so instead of failing.
    late = subprocess.run([sys.executable, "-c", "import tensorflow as tf\nfrom charseq.heads.lm.inference import "
                           "sample_on_one_op_thread\ntf.constant(1.0) + 1\nprint(sample_on_one_op_thread())"],
                          capture_output=True, text=True, timeout=300)
    assert late.stdout.split() == ["False"], late.stderr
