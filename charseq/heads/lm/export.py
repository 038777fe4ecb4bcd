"""A language model's SavedModel signature: `generate` (prompt, length, temperature, seed -> text),
the very compiled loop `charseq generate` runs (:meth:`charseq.heads.lm.inference.Generator.sample_fn`)."""

from __future__ import annotations

import tensorflow as tf

from charseq.export_ops import Chars
from charseq.heads.lm.inference import MAX_LENGTH, MAX_TEMPERATURE, MIN_TEMPERATURE, Generator
from charseq.vocab import load_vocab


class LanguageModelExport(tf.Module):
    """`generate`: prompt, length, temperature, seed -> text (the continuation, prompt not included).

    Temperature 0 takes the most likely character each step, as `--greedy` does; otherwise it must
    be in [0.01, 100] (as `charseq generate --temperature`). `length` is 0 to 1,000,000. An empty
    prompt starts from the start of a line, as `charseq generate` does. Inputs out of range, or more
    than one value (two prompts), fail with an InvalidArgumentError that names them.
    """

    def __init__(self, model, vocab):
        super().__init__()
        self.chars = Chars(vocab)
        self.model = model
        self._generator = Generator(model, vocab)
        self._start_ids = tf.constant(self._generator.prompt_ids(""), tf.int32)

    # Each input is one value. The specs leave the shape open so that the check below runs on what is
    # given: a signature called with two prompts would otherwise run on the first and say nothing.
    @tf.function(input_signature=[tf.TensorSpec(None, tf.string, name="prompt"),
                                  tf.TensorSpec(None, tf.int32, name="length"),
                                  tf.TensorSpec(None, tf.float32, name="temperature"),
                                  tf.TensorSpec(None, tf.int32, name="seed")])
    def generate(self, prompt, length, temperature, seed):
        prompt, length, temperature, seed = (
            _one(prompt, "prompt", "one string; call generate once per prompt"), _one(length, "length", "one integer"),
            _one(temperature, "temperature", "one number"), _one(seed, "seed", "one integer"))
        # Out of range is an InvalidArgumentError naming the input, never a silent greedy decode or
        # an unbounded loop.
        checks = [
            tf.debugging.assert_non_negative(length, message="generate: length must be 0 or more"),
            tf.debugging.assert_less_equal(length, MAX_LENGTH, message=f"generate: length must be at most {MAX_LENGTH}"),
            tf.debugging.Assert(tf.math.is_finite(temperature) & (
                tf.equal(temperature, 0.0) | ((temperature >= MIN_TEMPERATURE) & (temperature <= MAX_TEMPERATURE))),
                [f"generate: temperature must be 0 (greedy) or between {MIN_TEMPERATURE} and {MAX_TEMPERATURE}, not",
                 temperature])]
        with tf.control_dependencies(checks):
            ids = self.chars.encode(prompt)
        ids = tf.cond(tf.size(ids) > 0, lambda: ids, lambda: self._start_ids)[None]
        length = tf.maximum(length, 0)
        steps = tf.maximum(length, 1)  # the loop emits at least one token; a length of 0 cuts it off

        def sample(greedy):
            t = tf.constant(1.0) if greedy else temperature
            return lambda: self._generator.sample_fn(ids, 1, steps, t, None, None, seed, greedy)[0]
        tokens = tf.cond(temperature > 0, sample(False), sample(True))
        return {"text": self.chars.decode(tokens[0, :length])}

    def signatures(self) -> dict:
        return {"generate": self.generate}


def _one(value, name: str, what: str):
    """`value` as a scalar, or an InvalidArgumentError saying that `name` must be `what`. (With
    charseq.export_ops.checked_shape, the EnsureShape to [] failed first, with TensorFlow's own
    message, before the check that names the input.)"""
    check = tf.debugging.Assert(tf.equal(tf.rank(value), 0), [f"generate: {name} must be {what}, not a tensor of "
                                                              "shape", tf.shape(value)])
    with tf.control_dependencies([check]):
        return tf.reshape(value, [])


def build_export(model_dir) -> tuple[tf.Module, dict]:
    """The exportable module of a language-model run, and what to record about it."""
    from charseq.heads.lm.run import load_lm

    Chars.check(load_vocab(model_dir))  # before the model is built for a vocabulary it cannot export
    model, vocab, _ = load_lm(model_dir, "float32")  # see charseq.export
    return LanguageModelExport(model, vocab), {}
