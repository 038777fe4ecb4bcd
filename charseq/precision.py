"""Which numeric precision to compute in.

On CPUs with native bfloat16 arithmetic (AVX512-BF16 or AMX) Keras' `mixed_bfloat16` policy
runs the recurrent matrix products up to twice as fast as float32, while the weights, the
optimizer and the output softmax stay float32. Elsewhere (older CPUs, GPUs where cuDNN's
float32 kernels are already fast) the default is float32.
"""

from __future__ import annotations

import functools

from charseq.errors import CharseqError
from charseq.settings import INFERENCE_PRECISIONS, PRECISIONS


@functools.cache
def cpu_info() -> tuple[str, frozenset[str]]:
    """This CPU's model, as Linux reports it (/proc/cpuinfo: its name, with its x86 family, model and
    stepping, since a name such as "AMD EPYC" covers several generations), and its instruction-set
    flags ("Features" on ARM); elsewhere platform.processor() and no flags. The one reader of them:
    the kernels' build key, the choice of precision and the benchmark's report use it."""
    import platform

    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if not key and fields:  # the first processor's block is enough
                    break
                fields.setdefault(key, value.strip())
    except OSError:
        pass
    model = fields.get("model name") or platform.processor() or "unknown"
    if "cpu family" in fields:
        model += f" (family {fields['cpu family']}, model {fields.get('model', '?')}, stepping {fields.get('stepping', '?')})"
    return model, frozenset((fields.get("flags") or fields.get("Features") or "").split())


def cpu_has_bf16() -> bool:
    """Whether the CPU computes bfloat16 products natively (AVX512-BF16 or AMX)."""
    return bool(cpu_info()[1] & {"avx512_bf16", "amx_bf16"})


# Up to this width a text classifier's LSTM or GRU stays float32 on the compiled kernels, even on CPUs
# with native bf16: bfloat16 steps faster there, but its quality per minute has not been measured
# against float32's. A language model of any width computes in bfloat16 there: capped at the same
# passes, it reached float32's loss in 60-70% of the minutes (docs/benchmarks.md, "Precision").
FLOAT32_MAX_UNITS = 256


def resolve_precision(precision: str, units: int | None = None, cell: str = "lstm",
                      text_classifier: bool = False) -> str:
    """The policy `precision` stands for. `units`, `cell`: the recurrent width and cell of a language
    model or (with `text_classifier`) a text classifier. A GRU of up to FLOAT32_MAX_UNITS stays float32
    without the compiled kernels (Keras' layer steps slower in bfloat16), and a text classifier's LSTM
    or GRU on the kernels stays float32 up to that width. MNIST's reader does not pass them: its 1x128
    bidirectional LSTM, unmasked, trains faster in bfloat16 on the fused path."""
    if precision not in PRECISIONS:
        raise CharseqError(f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision != "auto":
        return precision
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU") or not cpu_has_bf16():
        return "float32"
    if units is not None and units <= FLOAT32_MAX_UNITS and cell in ("lstm", "gru"):
        from charseq import kernels

        if kernels.available():
            if text_classifier:
                return "float32"
        elif cell == "gru":
            return "float32"
    return "mixed_bfloat16"


def precision_of_run(config: dict) -> str | None:
    """The policy a trained run's model loads and resumes in, from its config.json: for a run whose
    precision was `auto`, the one `auto` chose when it started ("trained_precision"), so that a model
    trained in float32 stays float32 wherever and whenever it loads; bfloat16 stays bfloat16 where this
    machine would pick it too, float32 elsewhere (a CPU without native bf16, a GPU). None for a run
    that named its precision, or that a charseq before the record trained: its model's setting is
    resolved where it loads."""
    model, trained = config.get("model"), config.get("trained_precision")
    if not isinstance(model, dict) or model.get("precision", "auto") != "auto" or trained is None:
        return None
    return "float32" if trained == "float32" else resolve_precision("auto")


def asked_precision(precision: str | None) -> str | None:
    """A trained model's precision as a command asks for it (`evaluate` and `classify --precision`:
    the whole model built in it; None: the precision it was trained in). bfloat16 is refused on a CPU
    without native bf16, where it would be emulated, slower than float32 and no closer to it."""
    if precision is None:
        return None
    if precision not in INFERENCE_PRECISIONS:
        raise CharseqError(f"--precision must be one of {', '.join(INFERENCE_PRECISIONS)}, not {precision!r}")
    if precision == "mixed_bfloat16" and not cpu_has_bf16():
        raise CharseqError("--precision mixed_bfloat16 needs a CPU with AVX512-BF16 or AMX (this one would "
                           "emulate it, slower than float32); leave --precision out")
    return precision
