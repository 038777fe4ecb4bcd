"""Generation before and after the compiled sampling loop, side by side in one process.

The "before" sampler is charseq/sampling.py as it was before commit 825b386 (one compiled call
per character), read from git; "after" is the current one. Same model (the default 2x256 LSTM,
untrained), 500 characters after a 20-character prompt, best of 3:

    .venv/bin/python scripts/bench_generation.py
"""

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from charseq.heads.lm.run import ModelConfig, build_model  # noqa: E402
from charseq.heads.lm.inference import Generator  # noqa: E402
from charseq.settings import defaults  # noqa: E402
from charseq.vocab import CharVocab  # noqa: E402


def old_generator_class():
    source = subprocess.run(["git", "-C", str(ROOT), "show", "825b386^:charseq/sampling.py"],
                            capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "sampling_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("sampling_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Generator


def best_of_3(run) -> float:
    run(0)  # warm-up: tracing
    best = float("inf")
    for rep in range(3):
        start = time.perf_counter()
        run(rep + 1)
        best = min(best, time.perf_counter() - start)
    return best


def main():
    vocab = CharVocab.build("".join(chr(c) for c in range(32, 127)) + "\n")
    model = build_model(defaults(ModelConfig), vocab.size, "float32")
    prompt, length = "The river runs to th", 500
    generators = {"before": old_generator_class()(model, vocab), "after": Generator(model, vocab)}
    for batch in (1, 32):
        speed = {name: length * batch / best_of_3(lambda seed: g(prompt, length=length, seed=seed, num_samples=batch))
                 for name, g in generators.items()}
        print(f"batch {batch}: " + ", ".join(f"{k} {v:,.0f} chars/s" for k, v in speed.items())
              + f" ({speed['after'] / speed['before']:.1f}x)")
    speed = {name: length / best_of_3(lambda seed: g(prompt, length=length, seed=seed, on_text=lambda s: None))
             for name, g in generators.items()}
    print("streaming, batch 1: " + ", ".join(f"{k} {v:,.0f} chars/s" for k, v in speed.items())
          + f" ({speed['after'] / speed['before']:.1f}x)")


if __name__ == "__main__":
    main()
