"""Generation before and after the compiled sampling loop, side by side in one process.

The "before" sampler is charseq/sampling.py as it was before commit 825b386 (one compiled call per
character), read from git; "after" is the current one. Same model (the default 2x256 LSTM,
untrained), 500 characters after a 20-character prompt, best of 3. Then the studio's streaming
(2,000 characters, each with its probability and top 5) and 32 samples of 200 characters after a
1,000-character prompt: the code of commit 37a6672 (the studio's sampler on Keras' cell with each
token's probabilities computed inside the loop; the prompt read once for each sample) against the
current one, with the same texts checked. Then beam search, likewise: the searches of commit ea2089d
(a compiled call per step, the choice in numpy) against the current ones (the language model's in
compiled chunks of steps, the encoder-decoder's in one compiled loop), with the same hypotheses
checked, best of 3. The language model's: 200 characters at beam 5 and 16. The encoder-decoder's:
the default model (1x256 LSTM encoder and decoder, Luong attention, untrained, so every output runs
to the limit), 100 sources of 12 characters, 30 output tokens, beam 5:

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

from charseq.data.batching import pad_batch  # noqa: E402
from charseq.heads.lm.beam import BeamSearch  # noqa: E402
from charseq.heads.lm.inference import Generator  # noqa: E402
from charseq.heads.lm.inspect import LMProbe  # noqa: E402
from charseq.heads.lm.run import ModelConfig, build_model  # noqa: E402
from charseq.heads.seq2seq.config import ModelConfig as Seq2SeqConfig  # noqa: E402
from charseq.heads.seq2seq.inference import Decoder  # noqa: E402
from charseq.heads.seq2seq.run import build_model as build_seq2seq  # noqa: E402
from charseq.settings import defaults  # noqa: E402
from charseq.vocab import CharVocab  # noqa: E402


def module_at(revision: str, path: str):
    """The module at `path` in the repository as it was at `revision`."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{revision}:{path}"],
                            capture_output=True, text=True, check=True).stdout
    name = Path(path).stem + "_before"
    file = Path(tempfile.mkdtemp()) / f"{name}.py"
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # where autograph looks a converted function's module up
    spec.loader.exec_module(module)
    return module


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
    generators = {"before": module_at("825b386^", "charseq/sampling.py").Generator(model, vocab),
                  "after": Generator(model, vocab)}
    for batch in (1, 32):
        speed = {name: length * batch / best_of_3(lambda seed: g(prompt, length=length, seed=seed, num_samples=batch))
                 for name, g in generators.items()}
        print(f"batch {batch}: " + ", ".join(f"{k} {v:,.0f} chars/s" for k, v in speed.items())
              + f" ({speed['after'] / speed['before']:.1f}x)")
    speed = {name: length / best_of_3(lambda seed: g(prompt, length=length, seed=seed, on_text=lambda s: None))
             for name, g in generators.items()}
    print("streaming, batch 1: " + ", ".join(f"{k} {v:,.0f} chars/s" for k, v in speed.items())
          + f" ({speed['after'] / speed['before']:.1f}x)")
    probes = {"before": module_at("37a6672", "charseq/heads/lm/inspect.py").LMProbe(model, vocab),
              "after": LMProbe(model, vocab)}
    streamed = {name: [t["text"] for c in p.stream(prompt, length=2000, seed=1) for t in c] for name, p in probes.items()}
    assert streamed["before"] == streamed["after"], "the two studio samplers drew different texts"
    speed = {name: 2000 / best_of_3(lambda seed: sum(map(len, p.stream(prompt, length=2000, seed=seed))))
             for name, p in probes.items()}
    print("the studio's streaming with probabilities, batch 1: " + ", ".join(f"{k} {v:,.0f} chars/s" for k, v in speed.items())
          + f" ({speed['after'] / speed['before']:.1f}x), same texts")
    samplers = {"before": module_at("37a6672", "charseq/heads/lm/inference.py").Generator(model, vocab),
                "after": generators["after"]}
    long_prompt = (prompt + " and the sea does not fill. ") * 21
    options = dict(length=200, num_samples=32)
    texts = {name: g(long_prompt[:1000], seed=1, **options) for name, g in samplers.items()}
    assert texts["before"] == texts["after"], "the two samplers drew different texts"
    seconds = {name: best_of_3(lambda seed: g(long_prompt[:1000], seed=seed, **options)) for name, g in samplers.items()}
    print("32 samples of 200 after a 1,000-character prompt: " + ", ".join(f"{k} {v:.3f} s" for k, v in seconds.items())
          + f" ({seconds['before'] / seconds['after']:.1f}x), same texts")
    searches = {"before": module_at("ea2089d", "charseq/heads/lm/beam.py").BeamSearch(model, vocab),
                "after": BeamSearch(model, vocab)}
    length = 200
    for beam in (5, 16):
        found = {name: search(prompt, length=length, beam=beam, n_best=beam) for name, search in searches.items()}
        assert found["before"] == found["after"], "the two searches found different hypotheses"
        ms = {name: best_of_3(lambda _: search(prompt, length=length, beam=beam)) / length * 1e3
              for name, search in searches.items()}
        print(f"beam {beam}: " + ", ".join(f"{k} {v:.3f} ms/step" for k, v in ms.items())
              + f" ({ms['before'] / ms['after']:.1f}x), same hypotheses")
    sources = pad_batch([vocab.encode(f"{i:04d} river {i % 7}") for i in range(100)])
    seq2seq = build_seq2seq(defaults(Seq2SeqConfig), vocab.size, vocab.size, "float32")
    decoders = {"before": module_at("ea2089d", "charseq/heads/seq2seq/inference.py").Decoder(seq2seq, vocab),
                "after": Decoder(seq2seq, vocab)}
    found = {name: d.decode(sources, beam=5, n_best=5, max_len=30) for name, d in decoders.items()}
    assert found["before"] == found["after"], "the two decoders found different hypotheses"
    speed = {name: len(sources) / best_of_3(lambda _: d.decode(sources, beam=5, max_len=30))
             for name, d in decoders.items()}
    print("encoder-decoder, beam 5: " + ", ".join(f"{k} {v:,.0f} sources/s" for k, v in speed.items())
          + f" ({speed['after'] / speed['before']:.1f}x), same hypotheses")


if __name__ == "__main__":
    main()
