"""The bounds of every numeric option, and sizes checked against what the machine can hold.

:data:`OPTION_BOUNDS` is the one table of the float options' ranges: the library checks against it
(so the command line and the Python API refuse the same values), the studio bounds its request
fields with it and the exported SavedModel asserts it, so the four cannot drift. NaN and ±inf are
outside every range.

Sizes: 
TensorFlow reports a model or a batch too big for memory as a ResourceExhaustedError (or the
kernel kills the process) after minutes of work; charseq estimates the memory up front and says
which option to change, in one line. The estimates are deliberately rough (a factor of two either
way changes nothing): they exist to catch `--units 100000000`, not to tune a model to the last byte.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass

from charseq.errors import ArgumentTypeError, ArgumentValueError, CharseqError


@dataclass(frozen=True)
class Bound:
    """A closed or half-open interval a number must fall in; `option` is how the command line names it."""

    option: str
    low: float
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    unit: str = ""  # said after the range: "[0, 4] pixels"

    def holds(self, value: float) -> bool:
        return (math.isfinite(value) and (value > self.low if self.low_open else value >= self.low)
                and (value < self.high if self.high_open else value <= self.high))

    def __str__(self) -> str:
        high = "inf)" if math.isinf(self.high) else f"{self.high:g}{')' if self.high_open else ']'}"
        return f"{'(' if self.low_open else '['}{self.low:g}, {high}" + (f" {self.unit}" if self.unit else "")


def _bound(option: str, low: float, high: float = math.inf, interval: str = "[]", unit: str = "") -> Bound:
    return Bound(option, low, high, interval[0] == "(", interval[1] == ")", unit)


# Every float option of every surface (command line, Python API, studio, export), by setting name.
OPTION_BOUNDS = {b.option[2:].replace("-", "_") if key is None else key: b for key, b in [
    (None, _bound("--lr", 0, interval="()")),
    (None, _bound("--epochs", 0, interval="()")),
    (None, _bound("--time-budget", 0, interval="()")),
    (None, _bound("--decay-rate", 0, interval="()")),
    (None, _bound("--min-lr-ratio", 0, 1)),
    (None, _bound("--clip-norm", 0)),
    (None, _bound("--ema", 0, 1, "[)")),
    (None, _bound("--dropout", 0, 1, "[)")),
    (None, _bound("--input-dropout", 0, 1, "[)")),
    (None, _bound("--l2", 0)),
    (None, _bound("--val-fraction", 0, 1, "[)")),  # 0: no validation split
    (None, _bound("--label-smoothing", 0, 1, "[)")),
    (None, _bound("--char-noise", 0, 0.5, "[)")),
    (None, _bound("--augment-rotate", 0, 180, unit="degrees")),
    (None, _bound("--augment-scale", 0, 1, "[)")),
    (None, _bound("--augment-elastic", 0, 4, unit="pixels")),
    (None, _bound("--temperature", 0.01, 100)),
    (None, _bound("--top-p", 0, 1, "(]")),
    (None, _bound("--length-penalty", 0, 10)),
]}


def check_number(name: str, value, shown: str | None = None) -> float:
    """`value` as a float if it is a real number inside OPTION_BOUNDS[name], else an error naming
    the option (or `shown`, a parameter's Python name), its range and the value given."""
    bound = OPTION_BOUNDS[name]
    label = shown or bound.option
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{label} must be a number, not {type(value).__name__} {value!r}")
    if not math.isfinite(float(value)):
        raise ArgumentValueError(f"{label} must be a finite number in {bound}, not {value}")
    if not bound.holds(float(value)):
        raise ArgumentValueError(f"{label} must be in {bound}, not {value}")
    return float(value)

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
    """Bytes as a reader takes them in: GB up to a thousand, then TB, PB, EB (1.7 EB, not 1,788,139,748.6 GB).

    >>> _gb(25 * 2**30), _gb(3 * 2**40), _gb(1.92e18)
    ('25.0 GB', '3.0 TB', '1.7 EB')
    """
    n /= 2**30
    for unit in ("GB", "TB", "PB"):
        if n < 1000:
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} EB"


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


def check_val_fraction(val_fraction: float | None) -> None:
    """In [0, 1): 0 holds nothing out (no validation split)."""
    if val_fraction is not None:
        check_number("val_fraction", val_fraction)
