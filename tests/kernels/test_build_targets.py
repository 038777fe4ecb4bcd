"""The kernels compile for every x86 instruction set they choose between at run time. A build is
for the CPU it runs on (-march=native), so a machine only ever compiles its own paths: an AVX-512
EPYC without AMX once failed to build them (an AMX function inlined where the build had no AMX)
and fell back to Keras' layers at half to two thirds of the speed, while every Xeon built them.
These compile the sources for the other CPUs' instruction sets with the build's own flags for them,
at -O0: inlining and target errors show there as they do at -O3."""

import platform
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
import tensorflow as tf

from charseq import kernels

INSTRUCTION_SETS = {
    "avx2": ("-march=x86-64-v3",),  # an EPYC before Zen 4: float32 and the emulated bfloat16
    "avx512-bf16": ("-march=x86-64-v4", "-mavx512bf16"),  # an EPYC since Zen 4: AVX512-BF16, no AMX
    "amx": ("-march=sapphirerapids",),  # a Xeon since Sapphire Rapids
}


@pytest.mark.skipif(platform.machine() != "x86_64" or shutil.which("g++") is None,
                    reason="compiles for x86-64 CPUs with g++")
@pytest.mark.parametrize("name", INSTRUCTION_SETS)
def test_the_kernels_compile_for_each_instruction_set(name, tmp_path):
    commands = [kernels._compile_command(tf, "g++", source, tmp_path / f"{source.stem}.o", INSTRUCTION_SETS[name],
                                         optimize="-O0") for source in kernels.SOURCES]
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(kernels._run, commands))
    failed = [(source.name, run.stderr) for source, run in zip(kernels.SOURCES, runs) if run.returncode]
    assert not failed, f"{failed[0][0]} does not compile for {name}:\n{failed[0][1][-3000:]}"
    assert all((tmp_path / f"{source.stem}.o").stat().st_size > 0 for source in kernels.SOURCES)
