"""Tiny real runs of all three heads in one served directory, for the studio's tests.

    served/poems                        language model (30 steps on the test corpus)
    served/grid/lr=0.003, lr=0.01       a grid of two language models
    served/sentiment                    text classifier
    served/digits                       row-by-row image classifier (striped images, learnable)
    served/reverse                      encoder-decoder that reverses short strings
"""

from pathlib import Path

import numpy as np

from conftest import striped_images

LM = dict(units=32, layers=2, embedding_dim=16, batch_size=8, seq_len=32, eval_every=10, sample_length=0,
          precision="float32", log=lambda s: None, progress_bar=False)
SMALL = dict(units=32, embedding_dim=16, precision="float32", log=lambda s: None, progress_bar=False)


def train_studio_runs(root: Path, corpus: Path) -> Path:
    from charseq.heads.classifier.run import train_classifier, train_mnist
    from charseq.data.pairs import make_pairs
    from charseq.grid import run_grid
    from charseq.heads.lm.run import train_lm
    from charseq.heads.seq2seq.run import train_seq2seq

    served, data = root / "served", root / "data"
    data.mkdir(parents=True)
    train_lm(corpus, served / "poems", max_steps=40, **LM)
    grid = {k: v for k, v in LM.items() if k != "progress_bar"}  # the grid sets it itself
    run_grid("train-lm", served / "grid", {"lr": [3e-3, 1e-2]}, corpus, max_steps=20, **grid)

    rng = np.random.default_rng(0)
    good, bad = ["a good film", "great fun", "truly wonderful"], ["a bad film", "awful mess", "truly boring"]
    rows = ["sentence\tlabel"] + [f"{rng.choice(good if p else bad)}, {rng.choice(['really', 'so'])}\t{'pos' if p else 'neg'}"
                                  for p in rng.random(240) < 0.5]
    (data / "reviews.tsv").write_text("\n".join(rows) + "\n")
    train_classifier(data / "reviews.tsv", served / "sentiment", epochs=4, eval_every=20, batch_size=16, **SMALL)

    (xt, yt), (xv, yv) = striped_images(384, 0), striped_images(64, 1)
    np.savez(data / "stripes.npz", x_train=xt, y_train=yt, x_test=xv, y_test=yv)
    train_mnist(served / "digits", data / "stripes.npz", epochs=6, eval_every=20, batch_size=32, **SMALL)

    pairs = make_pairs("reverse", 2000, seed=0, length=(2, 6))
    (data / "reverse.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs))
    train_seq2seq(data / "reverse.tsv", served / "reverse", epochs=6, eval_every=100, batch_size=64, **SMALL)
    return served
