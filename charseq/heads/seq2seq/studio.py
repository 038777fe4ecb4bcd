"""The encoder-decoder in the studio: the Translate tab and its route.

    POST /api/translate   n-best hypotheses and the attention matrix of the chosen one

Examples are pairs of the run's validation data, split again from its config.json as training split them.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from charseq import web
from charseq.web import MAX_BEAM, RUN, BadRequest, Field, Page, read_json

TASK = "seq2seq"
MAX_SOURCE_CHARS = 1_000

PAGES = (Page("translate", "Translate", "translate.html", "translate.js"),)
TRANSLATE = {
    "run": RUN,
    "source": Field(str, required=True, low=1, high=MAX_SOURCE_CHARS),
    "beam": Field(int, 1, low=1, high=MAX_BEAM),
    "n_best": Field(int, 1, low=1, high=MAX_BEAM),
    "length_penalty": Field(float, 1.0, bound="length_penalty"),
    "choose": Field(int, 0, low=0, high=MAX_BEAM - 1),
    "unknown": Field(str, "error", high=10),  # source characters the model does not know: error or unk
}
FIELDS = {"/api/translate": TRANSLATE}


def data_files(run, config: dict) -> list:
    """What its validation pairs are read from: the training file, and the --val file if any."""
    return [f for f in (config["data"]["train"], config["data"].get("val")) if f]


def validation(run, config: dict) -> tuple[list, list]:
    """The run's validation pairs (sources, targets), split again as its training split them."""
    from charseq.data.batching import validation_rows
    from charseq.data.pairs import read_pairs
    from charseq.heads.seq2seq.run import SPLIT

    data, seed = config["data"], config["train"]["seed"]

    def read(path):
        # The training file's first line as training read it (a --val file's is told apart as training told it).
        header = data.get("header", False) if path == data["train"] else None
        pairs = read_pairs(path, data["skip_bad_rows"], data["max_input_len"], data["skip_long"], data["encoding"],
                           header=header)
        return pairs.sources, pairs.targets

    return validation_rows(data, seed, read, lambda sources, targets: (sources, None),
                           grouped=data.get("split") == SPLIT)


def examples(data, config: dict, n: int) -> list[dict]:
    """Up to `n` validation pairs, evenly spaced: {"source": ..., "target": ...}."""
    sources, targets = data
    step = max(1, len(sources) // max(1, n))
    return [{"source": sources[i], "target": targets[i]} for i in range(0, len(sources), step)][:n]


def routes(studio) -> list[Route]:
    async def translate(request: Request):
        from charseq.heads.seq2seq.inspect import explain_translation

        p = web.fields(await read_json(request), TRANSLATE)
        if p["n_best"] > p["beam"]:
            raise BadRequest(f"n_best ({p['n_best']}) must not exceed beam ({p['beam']})")
        loaded = await studio.loaded(p["run"], TASK)
        return JSONResponse(await run_in_threadpool(
            explain_translation, loaded.parts["translator"], p["source"], p["beam"], p["n_best"],
            p["length_penalty"], p["unknown"], p["choose"]))

    return [Route("/api/translate", translate, methods=["POST"])]
