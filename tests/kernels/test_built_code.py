"""What the compiler made of the kernels, read back from the library built on this machine. GCC once
dropped every prefetch of the forward pass without a word (a function that only prefetches looked
free of effects to it), which left the bfloat16 forward op up to a quarter slower; nothing else
showed it."""

import platform
import re
import shutil
import subprocess

import pytest
import tensorflow as tf

from charseq import kernels


def functions(library) -> dict[str, str]:
    """The library's machine code by (mangled) function name, as objdump lists it."""
    listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(library)], capture_output=True, text=True,
                             check=True, timeout=300).stdout
    found = re.finditer(r"^[0-9a-f]+ <([^>]+)>:\n(.*?)(?=\n\n|\Z)", listing, re.S | re.M)
    return {m.group(1): m.group(2) for m in found}


@pytest.mark.skipif(platform.machine() != "x86_64" or shutil.which("objdump") is None,
                    reason="reads the x86-64 code of the built library with objdump")
@pytest.mark.skipif(not kernels.available(), reason="the compiled kernels are not available here")
def test_every_forward_and_backward_block_asks_for_its_lines_ahead():
    # forward_tiles: the forward pass on AMX tiles (built wherever the compiler has AVX-512)
    library = kernels.build_dir(tf, kernels.compiler()) / kernels.LIBRARY
    blocks = {name: code for name, code in functions(library).items()
              if name.startswith(("_ZN7charseq13forward_block", "_ZN7charseq13forward_tiles",
                                     "_ZN7charseq14backward_block"))}
    assert any("forward_block" in name for name in blocks) and any("backward_block" in name for name in blocks)
    without = [name for name, code in blocks.items() if "prefetch" not in code]
    assert not without, f"{len(without)} of {len(blocks)} blocks never prefetch, e.g. {without[0]}"
