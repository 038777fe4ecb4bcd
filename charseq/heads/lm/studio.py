"""The language model in the studio: the Generate and Look inside tabs and their routes.

    POST /api/generate   text/event-stream: "chunk" events, then "done" (or "error")
    POST /api/analyze    per-character surprise and top 5, a layer's activations, found units

Examples are passages of the run's validation text (the end of its corpus that training held out).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from charseq.errors import CharseqError
from charseq.studio import limits
from charseq.studio.limits import RUN, BadRequest, Field
from charseq.studio.views import Page, error, event, read_json

TASK = "lm"
log = logging.getLogger("charseq.studio")

PAGES = (Page("generate", "Generate", "generate.html", "generate.js"),
         Page("inside", "Look inside", "inside.html", "inside.js"))
GENERATE = {
    "run": RUN,
    "prompt": Field(str, "", high=limits.MAX_PROMPT_CHARS),
    "length": Field(int, 200, low=1, high=limits.MAX_LENGTH),
    "temperature": Field(float, 1.0),  # its range is checked by the library, which names the greedy remedy
    "top_k": Field(int, 0, low=0, high=100_000),
    "top_p": Field(float, 1.0, bound="top_p"),
    "seed": Field(int, None, low=-2**31, high=2**31 - 1),
    "greedy": Field(bool, False),
    "beam": Field(int, 1, low=1, high=limits.MAX_BEAM),
    "n_best": Field(int, 1, low=1, high=limits.MAX_BEAM),
    "unknown": Field(str, "error", high=10),
}
ANALYZE = {
    "run": RUN,
    "text": Field(str, required=True, low=1, high=limits.MAX_ANALYZE_CHARS),
    "layer": Field(int, 0, low=0, high=1000),
}
FIELDS = {"/api/generate": GENERATE, "/api/analyze": ANALYZE}
PROMPT_CHARS = 40  # an example prompt: the start of a line of the validation text
PASSAGE_CHARS = 600  # an example to look inside: long enough for the found units to mean something


def examples(run, n: int) -> list[dict]:
    """Up to `n` passages of the run's validation text, evenly spaced, each starting at a line:
    {"prompt": its first characters, "text": the passage}."""
    from charseq.data.corpus import Corpus
    from charseq.vocab import load_vocab

    ids = Corpus(run.path / "data").val
    if not len(ids):
        return []
    vocab = load_vocab(run.path)
    found = []
    for k in range(n):
        start = len(ids) * k // n
        text = vocab.decode(ids[start:start + 2 * PASSAGE_CHARS].tolist())
        line = text.find("\n")
        if 0 <= line < len(text) - PROMPT_CHARS:
            text = text[line + 1:]
        passage = text[:PASSAGE_CHARS]
        prompt = passage.split("\n", 1)[0][:PROMPT_CHARS] or passage[:PROMPT_CHARS]
        if prompt.strip() and all(e["prompt"] != prompt for e in found):
            found.append({"prompt": prompt, "text": passage})
    return found


def routes(studio) -> list[Route]:
    async def generate(request: Request):
        p = limits.fields(await read_json(request), GENERATE)
        if p["n_best"] > p["beam"]:
            raise BadRequest(f"n_best ({p['n_best']}) must not exceed beam ({p['beam']})")
        if p["beam"] > 1 and p["length"] > limits.MAX_BEAM_LENGTH:
            raise BadRequest(f"length is more than the limit of {limits.MAX_BEAM_LENGTH} for beam search")
        if not studio.slots.acquire(blocking=False):
            return error(f"the studio is busy: {studio.max_generations} generations are running (its limit, "
                         "--max-generations); try again shortly", 503)
        try:
            loaded = await studio.loaded(p["run"], TASK)
            probe, beam = loaded.parts["probe"], loaded.parts["beam"]
            if p["seed"] is None:
                p["seed"] = int(time.time() * 1000) % 2**31
            await run_in_threadpool(probe.check, p["prompt"], p["temperature"], p["top_k"], p["top_p"],
                                    p["seed"], p["greedy"], p["unknown"])
        except BaseException:
            studio.slots.release()
            raise
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()
        put = lambda kind, data: loop.call_soon_threadsafe(queue.put_nowait, (kind, data))  # noqa: E731

        def work():  # in a worker thread; the slot is released however it ends
            start, tokens = time.perf_counter(), []
            try:
                if p["beam"] > 1:
                    hyps = beam(p["prompt"], length=p["length"], beam=p["beam"], n_best=p["n_best"],
                                unknown=p["unknown"], should_stop=stop.is_set)
                    tokens = probe.report(p["prompt"], hyps[0][0], p["unknown"]) if hyps else []
                    put("chunk", {"tokens": tokens})
                    extra = {"hypotheses": [{"text": t, "log_prob": round(lp, 5)} for t, lp in hyps]}
                else:
                    for chunk in probe.stream(p["prompt"], p["length"], p["temperature"], p["top_k"],
                                              p["top_p"], p["seed"], p["greedy"], p["unknown"],
                                              should_stop=stop.is_set):
                        tokens += chunk
                        put("chunk", {"tokens": chunk})
                    extra = {"seed": p["seed"]}
                studio.count(stopped=int(stop.is_set()), finished=int(not stop.is_set()))
                put("done", {"text": "".join(t["text"] for t in tokens), "tokens": len(tokens),
                             "seconds": round(time.perf_counter() - start, 3), **extra})
            except CharseqError as e:
                put("error", {"error": studio.hide_paths(limits.in_request_terms(e, GENERATE))})
            except Exception:
                log.exception("generation failed")
                put("error", {"error": "internal error while generating (see the server's log)"})
            finally:
                studio.count(running=-1)
                studio.slots.release()

        studio.count(started=1, running=1)
        studio.executor.submit(work)

        async def events():
            try:
                while True:
                    kind, data = await queue.get()
                    yield event(kind, data)
                    if kind != "chunk":
                        return
            finally:
                stop.set()  # the client went away (or the stream ended): stop generating

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def analyze(request: Request):
        p = limits.fields(await read_json(request), ANALYZE)
        loaded = await studio.loaded(p["run"], TASK)
        return JSONResponse(await run_in_threadpool(loaded.parts["probe"].analyze, p["text"], p["layer"]))

    return [Route("/api/generate", generate, methods=["POST"]), Route("/api/analyze", analyze, methods=["POST"])]
