"""Which numeric precision to compute in.

On CPUs with native bfloat16 arithmetic (AVX512-BF16 or AMX) Keras' `mixed_bfloat16` policy
runs the recurrent matrix products about twice as fast as float32, while the weights, the
optimizer and the output softmax stay float32. Elsewhere (older CPUs, GPUs where cuDNN's
float32 kernels are already fast) the default is float32.
"""

from __future__ import annotations

import functools

from charseq.errors import CharseqError
from charseq.settings import PRECISIONS


@functools.cache
def cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resolve_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise CharseqError(f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision != "auto":
        return precision
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return "float32"
    return "mixed_bfloat16" if cpu_has_bf16() else "float32"
