"""Compiled CPU kernels, built from the C++ sources beside this file on first use.

    ops = load()        # the loaded op library (LSTM and GRU ops), or None (then Keras' layers run)

The sources are compiled once per machine against the installed TensorFlow (its headers and
`tf.sysconfig` flags) into charseq's cache (charseq.cache), the way `torch.utils.cpp_extension.load`
does: ``<cache root>/kernels/<tf version>-<hash>/`` (``~/.cache/charseq`` by default), where the
hash covers the sources, the compiler, its flags and the CPU's instruction-set flags (it is built
with ``-march=native``, less AVX512-FP16). A file lock keeps two processes from building it at
once. Each source compiles in its own compiler process, side by side, and the objects are linked
in a temporary folder; the library is then renamed into place, so a reader never sees half a file.

A library built already is used without a compiler, and from a cache this user may only read (a
team's, or one copied into a container): the compiler names the folder, so without one the
library built for these sources, this TensorFlow and this CPU is found by the `built-for` file
beside it. ``CXX`` may carry a launcher or flags (``CXX="ccache g++"``).

No compiler, a failed build or a library that does not load: one line on stderr says so and which
path runs instead, and `load()` returns None. A failed build is remembered in the cache (delete
the folder to try again). ``CHARSEQ_KERNEL=off`` skips the kernel altogether.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from charseq.cache import cache_root as charseq_cache_root

HERE = Path(__file__).parent
# One library; each source includes the headers beside it.
SOURCES = [HERE / "lstm.cc", HERE / "gru.cc", HERE / "step.cc", HERE / "dropout.cc", HERE / "adam.cc"]
LIBRARY = "recurrent.so"
OFF_VALUES = ("0", "off", "false", "no")
# How the ops compute the recurrent product (the `recurrence` of compiled_lstm / compiled_gru):
# float32; bfloat16 operands summed in float32, on AMX tiles where the CPU has them (Xeons since
# Sapphire Rapids), else with AVX512-BF16 dot products, else rounding in portable code; the dot
# products even where AMX exists ("bfloat16_avx512"); or always the portable code
# ("bfloat16_emulated"). Tests check each native path against the portable one, which runs on any CPU.
RECURRENCES = ("float32", "bfloat16", "bfloat16_avx512", "bfloat16_emulated")


def cache_root() -> Path:
    return charseq_cache_root("kernels")


def _cpu_flags() -> str:
    from charseq.precision import cpu_info

    flags = cpu_info()[1]
    return " ".join(sorted(flags)) if flags else platform.processor()


NATIVE = ("-march=native",)


@functools.cache
def _target_flags(compiler: str, cpu: tuple[str, ...] = NATIVE) -> tuple[str, ...]:
    """The flags for the instruction sets `cpu` names (this CPU's by default), less AVX512-FP16 where
    they would turn it on: the Eigen that TensorFlow ships does not compile with GCC 12 once
    __AVX512FP16__ is defined (PacketMathFP16.h, seen on Sapphire Rapids), and the kernels compute
    in float32 and bfloat16, never float16."""
    try:
        macros = subprocess.run([*shlex.split(compiler), *cpu, "-dM", "-E", "-x", "c++", "-"], input="",
                                capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return cpu
    return (*cpu, "-mno-avx512fp16") if "__AVX512FP16__" in macros else cpu


def _compile_command(tf, compiler: str, source: Path, target: Path, cpu: tuple[str, ...] = NATIVE,
                     optimize: str = "-O3") -> list[str]:
    """The command that compiles `source` for this CPU, or for the instruction sets `cpu` names
    (-march=...: the tests compile for the CPUs the build is not running on)."""
    # -fno-math-errno: the kernels never read errno, and a square root that need not set it is one
    # vector instruction (Adam's update loop vectorizes; with errno it calls sqrtf per element).
    return [*shlex.split(compiler), "-c", "-fPIC", optimize, "-fno-math-errno", *_target_flags(compiler, cpu), "-w",
            str(source), "-o", str(target), *tf.sysconfig.get_compile_flags()]


def _link_command(tf, compiler: str, objects: list[Path], target: Path) -> list[str]:
    return [*shlex.split(compiler), "-shared", *map(str, objects), "-o", str(target), *tf.sysconfig.get_link_flags()]


def compiler() -> str:
    """The C++ compiler the kernels are built with: $CXX, else g++."""
    return os.environ.get("CXX") or "g++"


def _digest(*parts: bytes) -> str:
    """The SHA-256 of `parts`, each ended by a NUL byte."""
    key = hashlib.sha256()
    for part in parts:
        key.update(part)
        key.update(b"\0")
    return key.hexdigest()


def _source_bytes() -> list[bytes]:
    return [p.read_bytes() for p in [*SOURCES, *sorted(HERE.glob("*.h"))]]


def build_dir(tf, compiler: str) -> Path:
    """Where these sources, built by this compiler for this TensorFlow and this CPU, are cached."""
    commands = [*_compile_command(tf, compiler, Path("s"), Path("o")),
                *_link_command(tf, compiler, [Path("o")], Path("t"))]
    key = _digest(*_source_bytes(), compiler.encode(), _compiler_version(compiler).encode(),
                  " ".join(commands).encode(), _cpu_flags().encode(), platform.machine().encode())
    return cache_root() / f"{tf.__version__}-{key[:16]}"


def built_for(tf) -> str:
    """What a built library is for, whichever compiler built it: these sources, this TensorFlow, this
    CPU's instruction sets and machine (the `built-for` file beside the library holds it)."""
    return _digest(*_source_bytes(), tf.__version__.encode(), _cpu_flags().encode(), platform.machine().encode())


def _built_already(tf) -> Path | None:
    """A library built for `built_for(tf)` by any compiler, in the cache: used where none can build it."""
    wanted = built_for(tf)
    for marker in sorted(cache_root().glob(f"{tf.__version__}-*/built-for")):
        try:
            if marker.read_text(encoding="utf-8").strip() == wanted and (marker.parent / LIBRARY).exists():
                return marker.parent / LIBRARY
        except OSError:
            continue
    return None


def _compiler_version(compiler: str) -> str:
    try:
        return subprocess.run([*shlex.split(compiler), "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _say(message: str) -> None:
    print(f"charseq: {message}", file=sys.stderr, flush=True)


def _build(tf, compiler: str, directory: Path) -> Path:
    """The built library in `directory`, building it under a file lock if it is not there yet.
    Raises RuntimeError (with the reason) if it cannot be built."""
    library, failed = directory / LIBRARY, directory / "build-failed.log"
    if library.exists():  # renamed into place whole: a cache this user may only read serves as well
        return library
    try:
        directory.mkdir(parents=True, exist_ok=True)
        lock = open(directory / ".lock", "w")
    except OSError as e:
        raise RuntimeError(f"cannot write to the kernel cache {directory.parent} ({e.strerror}); set CHARSEQ_CACHE "
                           "to a folder you can write") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it: wait for it
        if library.exists():
            return library
        if failed.exists():
            raise RuntimeError(f"it failed to build before (see {failed}; delete {directory} to retry)")
        if sys.stderr.isatty():  # a first run is otherwise silent for up to a minute; logs and pipes stay clean
            _say(f"building the compiled LSTM and GRU kernels for this CPU into {directory} (once; up to a minute)")
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            objects = [Path(tmp, source.stem + ".o") for source in SOURCES]
            built = Path(tmp, LIBRARY)
            try:
                # One compiler per source, side by side: the first use waits for the slowest source, not
                # for all of them one after another (40% less time on two cores).
                with ThreadPoolExecutor(max_workers=min(len(SOURCES), _cores())) as pool:
                    runs = list(pool.map(_run, [_compile_command(tf, compiler, source, obj)
                                                for source, obj in zip(SOURCES, objects)]))
                if all(r.returncode == 0 for r in runs):
                    runs.append(_run(_link_command(tf, compiler, objects, built)))
            except subprocess.TimeoutExpired as e:
                raise RuntimeError(f"{compiler} took over {e.timeout:.0f}s") from None
            killed = next((r for r in runs if r.returncode < 0), None)
            if killed is not None:  # out of memory, or stopped by hand: the build itself may be sound
                raise RuntimeError(f"{compiler} was stopped by {_signal_name(-killed.returncode)}; the kernels will "
                                   "be built again next time")
            if any(r.returncode for r in runs):
                failed.write_text("".join(r.stdout + r.stderr for r in runs), encoding="utf-8")
                raise RuntimeError(f"{compiler} failed (see {failed})")
            (directory / "built-for").write_text(built_for(tf), encoding="utf-8")
            os.replace(built, library)
    return library


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _cores() -> int:
    """The cores this process may run on (Linux: its affinity; elsewhere all of them)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=900)


def available() -> bool:
    """Whether the compiled kernels (LSTM and GRU) run here."""
    return load() is not None


def native_bf16() -> bool:
    """Whether the kernels' bfloat16 recurrence runs on AVX512-BF16 here (else it is emulated)."""
    from charseq.precision import cpu_info

    return "avx512_bf16" in cpu_info()[1]


@functools.cache
def native_tiles() -> bool:
    """Whether the kernels' bfloat16 recurrence runs on AMX tiles here: the CPU has them (Xeons since
    Sapphire Rapids) and Linux lets this process use them (the request the kernels make, Linux 5.16
    and later); else it runs on AVX512-BF16 (or emulated)."""
    from charseq.precision import cpu_info

    if not {"amx_tile", "amx_bf16"} <= cpu_info()[1] or (platform.system(), platform.machine()) != ("Linux", "x86_64"):
        return False
    import ctypes

    arch_prctl, request_permission, tile_data = 158, 0x1023, 18  # x86-64 syscall, ARCH_REQ_XCOMP_PERM, XTILEDATA
    return ctypes.CDLL(None, use_errno=True).syscall(arch_prctl, request_permission, tile_data) == 0


def check_recurrence(recurrence: str) -> None:
    if recurrence not in RECURRENCES:
        raise ValueError(f"recurrence must be one of {', '.join(RECURRENCES)}, not {recurrence!r}")


def sequence_inputs(x, mask, go_backwards: bool):
    """(the op library, x, mask) as the compiled ops read a sequence: `x` [batch, time, features]
    reversed in time with `go_backwards` (Keras reads it last step first), and the mask as a float
    [batch, time] tensor, or an empty one for "every step is real". RuntimeError where the kernels
    are not available."""
    ops = load()
    if ops is None:
        raise RuntimeError("the compiled LSTM and GRU kernels are not available")
    import tensorflow as tf

    if go_backwards:
        x = tf.reverse(x, [1])
        mask = None if mask is None else tf.reverse(mask, [1])
    mask = tf.zeros([0], tf.float32) if mask is None else tf.cast(mask, tf.float32)
    return ops, x, mask


@functools.cache
def load():
    """The compiled op library (ops `charseq_lstm_forward`, `charseq_lstm_backward`,
    `charseq_gru_forward`, `charseq_gru_backward`, and for generation `charseq_pack_weights`,
    `charseq_lstm_step`, `charseq_gru_step`), or None."""
    if os.environ.get("CHARSEQ_KERNEL", "").strip().lower() in OFF_VALUES:
        return None
    fallback = "the LSTM and GRU run on Keras' own layers instead"
    import tensorflow as tf

    cxx = compiler()
    try:
        if not shlex.split(cxx) or shutil.which(shlex.split(cxx)[0]) is None:
            library = _built_already(tf)
            if library is None:
                _say(f"no C++ compiler ({cxx}) to build the compiled LSTM and GRU kernels: {fallback}")
                return None
        else:
            library = _build(tf, cxx, build_dir(tf, cxx))
        return tf.load_op_library(str(library))
    except (OSError, RuntimeError, ValueError, tf.errors.NotFoundError) as e:  # ValueError: CXX's quotes unclosed
        _say(f"the compiled LSTM and GRU kernels are not available ({e}): {fallback}")
        return None
