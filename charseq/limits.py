"""Sizes checked against what the machine can hold, before anything is built or written.

TensorFlow reports a model or a batch too big for memory as a ResourceExhaustedError (or the
kernel kills the process) after minutes of work; charseq estimates the memory up front and says
which option to change, in one line. The estimates are deliberately rough (a factor of two either
way changes nothing): they exist to catch `--units 100000000`, not to tune a model to the last byte.
"""

from __future__ import annotations

import os

from charseq.errors import CharseqError

GATES = {"rnn": 1, "lstm": 4, "gru": 3}
# float32 weights, their gradients and Adam's two moments: 4 copies of every parameter.
BYTES_PER_PARAMETER = 16
# Share of the machine's memory a model may plan to use (TensorFlow, the data and the OS need the rest).
USABLE = 0.6


def machine_memory() -> int:
    """Bytes of memory this process may use: the physical memory, or a cgroup limit if lower."""
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(limit_file) as f:
                value = f.read().strip()
        except OSError:
            continue
        if value.isdigit():
            total = min(total, int(value))
    return total


def _gb(n: float) -> str:
    return f"{n / 2**30:,.1f} GB"


def recurrent_parameters(cell: str, units: int, layers: int, input_dim: int, bidirectional: bool = False) -> int:
    """Weights of a stack of recurrent layers (kernel, recurrent kernel and biases per gate)."""
    gates, directions = GATES.get(cell, 4), 2 if bidirectional else 1
    total, inputs = 0, input_dim
    for _ in range(layers):
        total += directions * gates * (units * (inputs + units) + 2 * units)
        inputs = units * directions
    return total


def check_model_memory(config, vocab_size: int = 0, copies: int = 1) -> None:
    """Refuse a backbone whose weights, gradients and optimizer state would not fit in memory
    (`copies` backbones: 2 for an encoder-decoder), naming the options that make it big."""
    units, layers, embedding = int(config.units), int(config.layers), int(config.embedding_dim)
    params = copies * (recurrent_parameters(config.cell, units, layers, embedding,
                                            bool(getattr(config, "bidirectional", False)))
                       + vocab_size * (embedding + units))
    need, have = params * BYTES_PER_PARAMETER, machine_memory()
    if need > USABLE * have:
        raise CharseqError(
            f"--units {units} with --layers {layers} and --embedding-dim {embedding} makes a model of about "
            f"{params:,} parameters, which needs about {_gb(need)} for its weights, gradients and optimizer "
            f"state; this machine has {_gb(have)}. Use a smaller --units or --layers")


def check_sequence_memory(what: str, option: str, batch: int, length: int, units: int, layers: int,
                          cell: str, attention_length: int = 0) -> None:
    """Refuse batches whose activations (kept for the backward pass) would not fit in memory:
    `length` steps of `batch` rows through `layers` layers of `units`, plus an attention matrix."""
    per_step = batch * units * layers * (GATES.get(cell, 4) + 3) * 4
    need = 2 * length * per_step + 3 * batch * length * attention_length * 4
    have = machine_memory()
    if need > USABLE * have:
        raise CharseqError(f"{what} needs about {_gb(need)} of activations to train at --batch-size {batch}, more "
                           f"than this machine's {_gb(have)}; {option}")
