"""An encoder-decoder's n-best hypotheses and where it looked: the attention matrix.

    translator = Translator("runs/add")
    report = explain_translation(translator, "123+456", beam=5, n_best=3)
    report["hypotheses"]   # [{"text", "log_prob", "score"}, ...] best first
    report["attention"]    # [output tokens + end][source tokens]: attention weights, rows sum to 1
    report["cut_off"]      # stopped at the decoding limit: no end symbol, nor its row
    report["unknown_at"]   # the source characters read as the unknown symbol (unknown="unk")

The attention of the chosen hypothesis is read by feeding it back through the decoder with
teacher forcing (the decoder is causal, so each step sees what it saw while decoding) and
asking the attention layer for its weights. Columns follow the source as written, also for a
run trained with --reverse-source (which reads it backwards).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from charseq.errors import CharseqError
from charseq.heads.lm.inspect import piece
from charseq.heads.seq2seq.inference import cut_off
from charseq.vocab import BOS

END = "</s>"


def attention_matrix(translator, source: str, output: str, unknown: str = "error") -> np.ndarray | None:
    """Attention weights [len(output tokens) + 1, len(source tokens)] while the model produces
    `output` (then the end symbol) from `source`; None for a model without attention."""
    model = translator.model
    if model.attention is None:
        return None
    source_ids = translator.encode([source], unknown)[0]
    target_ids = translator.target_vocab.encode(output).astype(np.int32)
    memory, mask, states = model.encode(tf.constant(source_ids[None, :]), training=False)
    decoder_input = np.concatenate([[BOS], target_ids]).astype(np.int32)
    outputs, _ = model.decoder(tf.constant(decoder_input[None, :]), initial_state=states, training=False)
    _, weights = model.attention([outputs, memory], mask=[None, mask], return_attention_scores=True)
    weights = np.asarray(weights[0], np.float64)
    if translator.config["model"].get("reverse_source"):
        weights = weights[:, ::-1]  # the encoder read the source backwards; show it as written
    return weights


def explain_translation(translator, source: str, beam: int = 1, n_best: int = 1, length_penalty: float = 1.0,
                        unknown: str = "error", choose: int = 0) -> dict:
    """The n-best hypotheses of `source` and the attention matrix of hypothesis `choose`."""
    hyps = translator([source], beam=beam, n_best=n_best, length_penalty=length_penalty, unknown=unknown)[0]
    if not 0 <= choose < max(len(hyps), 1):
        which = (f"0, the only hypothesis (n_best is {n_best})" if len(hyps) <= 1 else
                 f"the index of one of the {len(hyps)} hypotheses, 0 to {len(hyps) - 1} (raise n_best for more)")
        raise CharseqError(f"choose must be {which}, not {choose}")
    source_ids = translator.source_vocab.encode(source)
    report = {"hypotheses": [{"text": t, "log_prob": round(lp, 5), "score": round(sc, 5)} for t, lp, sc in hyps],
              "source_tokens": [piece(translator.source_vocab, i) for i in source_ids],
              # which source characters read as unknown ("unknown": "unk"), so a page can show them as typed
              "unknown_at": np.flatnonzero(source_ids == translator.source_vocab.unk_id).tolist(),
              "output_tokens": [], "attention": None, "chosen": choose, "cut_off": False}
    if hyps:
        text = hyps[choose][0]
        # Stopped at the decoding limit, the hypothesis has no end symbol, nor a row for one.
        report["cut_off"] = cut = cut_off(text, translator.max_output_len)
        report["output_tokens"] = [piece(translator.target_vocab, i)
                                   for i in translator.target_vocab.encode(text)] + ([] if cut else [END])
        weights = attention_matrix(translator, source, text, unknown)
        if weights is not None:
            report["attention"] = np.round(weights[:len(report["output_tokens"])], 4).tolist()
    return report


def load_for_studio(path) -> dict:
    """What the studio's translate view needs of an encoder-decoder run: its config and a Translator."""
    from charseq.heads.seq2seq.run import Translator

    translator = Translator(path)
    return {"config": translator.config, "translator": translator}
