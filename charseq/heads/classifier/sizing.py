"""The classifier's defaults sized to its data: texts by their number, images by the MNIST recipe (the
shared parts: charseq.sizing; the measurements: docs/defaults.md). Plain Python, no TensorFlow."""

from __future__ import annotations

import math

from charseq.sizing import Sizing, add_stopping, clamp, finish, with_given


# A text classifier over SentencePiece pieces embeds each piece in 128 dimensions, the size measured with
# pieces: a piece carries more than a character, whose 64 (the backbone's default) suffice.
PIECES_EMBEDDING = 128


def size_text_classifier(examples: int, vocab_size: int, given: dict, pieces: bool = False,
                         inherited: tuple[str, ...] = ()) -> Sizing:
    """A text classifier's defaults from its number of training texts (of characters, or with
    `pieces` of SentencePiece pieces). `inherited`: the settings of `given` a language model fixed."""
    # Character noise and, from 20k texts, a GRU gave the best SST-2 dev accuracy; the small tier keeps the
    # LSTM it was measured with (docs/defaults.md, docs/benchmarks.md). The noise is a choice made on dev:
    # the training texts' own validation split does not prefer it (docs/defaults.md).
    if examples < 20_000:
        size, rule = "small", dict(cell="lstm", layers=1, units=128, dropout=0.3, batch_size=32, lr=2e-3)
    else:
        size, rule = "large", dict(cell="gru", layers=1, units=256, dropout=0.2, batch_size=64, lr=2e-3)
    rule["char_noise"] = 0.1
    # Max pooling over the outputs: 12-15 points ahead of the final state on SST-2 dev, and the readout the
    # validation split picks too (docs/defaults.md).
    rule["readout"] = "max"
    shape = "{layers}x{units} {cell}, {readout} readout, char noise {char_noise:g}, batch {batch_size}"
    if pieces:  # PIECES_EMBEDDING: a piece carries more than a character
        rule["embedding_dim"] = PIECES_EMBEDDING
        shape = ("{layers}x{units} {cell} over pieces (embedding {embedding_dim}), {readout} readout, "
                 "piece noise {char_noise:g}, batch {batch_size}")
    batch = given.get("batch_size") or rule["batch_size"]
    steps_per_epoch = math.ceil(examples / batch)
    add_stopping(rule, given, steps_per_epoch, 5, round(clamp(1e6 / max(1, examples), 5, 50)))
    return finish(f"{size} data set ({examples:,} texts, vocabulary {vocab_size:,})", rule, given, shape, inherited)


def size_image_classifier(examples: int, given: dict) -> Sizing:
    """An image classifier's (MNIST rows) defaults: the MNIST benchmark's recipe, early stopping
    under a cap of 20 epochs."""
    # The 10-minute MNIST benchmark's recipe (docs/benchmarks.md): both directions, small shifts, turns and
    # scalings, lr 3e-3. Without its moving average (--ema), which gained little and needs a long run.
    rule = dict(cell="lstm", layers=1, units=128, dropout=0.0, batch_size=128, lr=3e-3, bidirectional=True,
                augment_shift=2, augment_rotate=10.0, augment_scale=0.1)
    batch = given.get("batch_size") or rule["batch_size"]
    steps_per_epoch = math.ceil(examples / batch)
    # 20 epochs: the 10-minute runs above trained 23-25 (the cosine schedule anneals to the cap). Patience 5:
    # while the rate is high the validation figures stall for 3 epochs in a row and then improve again, so
    # patience 3 stopped a run after 6 epochs at 98.60% validation accuracy that trains on to 99.38%
    # (docs/defaults.md).
    add_stopping(rule, given, steps_per_epoch, 5, 20)
    rule["eval_every"] = steps_per_epoch  # one evaluation per epoch (the previous default), even past 200 steps
    s = with_given(rule, given)  # the augmentation the run will use, for the start line
    augment = [f"shifts ±{s['augment_shift']} px"] if s["augment_shift"] else []
    augment += [f"turns ±{s['augment_rotate']:g}°"] if s["augment_rotate"] else []
    augment += [f"scalings ±{s['augment_scale'] * 100:g}%"] if s["augment_scale"] else []
    shape = (f"{{layers}}x{{units}}{' bidirectional' if s['bidirectional'] else ''} {{cell}}, batch {{batch_size}}, "
             f"{', '.join(augment) or 'no augmentation'}")
    return finish(f"{examples:,} images", rule, given, shape)
