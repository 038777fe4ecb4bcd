"""The studio's HTTP layer: parse and bound a request, call one library function, shape the JSON.

    app = create_app(["runs/"])          # an ASGI app (Starlette); `charseq serve` runs it on uvicorn

Routes (all JSON; errors are ``{"error": "..."}`` with a 4xx status, never a traceback):

    GET  /api/runs                   every served run: name, task, shape, data, best score
    GET  /api/runs/{name}/metrics    that run's evaluations (metrics.jsonl)
    GET  /api/status                 generations running and the limit, models loaded
    POST /api/generate               text/event-stream: "chunk" events, then "done" (or "error")
    POST /api/analyze                per-character surprise and top 5, a layer's activations, found units
    POST /api/classify               label, probabilities, occlusion saliency (text) or per-row probabilities (image)
    POST /api/translate              n-best hypotheses and the attention matrix of the chosen one

Model work runs in worker threads, never on the event loop. Generations are bounded: past
`max_generations` running at once, /api/generate answers 503. A client that disconnects stops
its generation at the next chunk.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from charseq.errors import CharseqError
from charseq.heads import head
from charseq.studio import limits
from charseq.studio.limits import BadRequest
from charseq.studio.runs import ModelCache, describe, find_runs, read_metrics

log = logging.getLogger("charseq.studio")
# Each POST route and the fields its JSON body may have.
REQUEST_FIELDS = {"/api/generate": limits.GENERATE, "/api/analyze": limits.ANALYZE,
                  "/api/classify": limits.CLASSIFY, "/api/translate": limits.TRANSLATE}
POST_ROUTES = set(REQUEST_FIELDS)
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}


def static_files() -> dict[str, tuple[bytes, str]]:
    """The page's files, read into memory once: URL path -> (content, type). Requests are
    answered from this table, so no request path ever reaches the file system."""
    table = {}
    folder = resources.files("charseq.studio") / "static"
    for item in folder.iterdir():
        suffix = "." + item.name.rsplit(".", 1)[-1]
        if item.is_file() and suffix in CONTENT_TYPES:
            table[f"/static/{item.name}"] = (item.read_bytes(), CONTENT_TYPES[suffix])
    table["/"] = table["/static/index.html"]
    return table


class Studio:
    """The served runs, the model cache and the generation slots behind the routes."""

    def __init__(self, directories, max_generations: int = 16, max_models: int = 4):
        if max_generations < 1:
            raise CharseqError(f"--max-generations must be at least 1, not {max_generations}")
        self.runs = find_runs(directories)
        self.cache = ModelCache(max_models)
        self.max_generations = max_generations
        self.slots = threading.BoundedSemaphore(max_generations)
        self.executor = ThreadPoolExecutor(max_workers=max_generations, thread_name_prefix="generate")
        self.counts = {"started": 0, "finished": 0, "stopped": 0, "running": 0}
        self._counts_lock = threading.Lock()

    def count(self, **changes) -> None:
        with self._counts_lock:
            for key, delta in changes.items():
                self.counts[key] += delta

    def run(self, name) -> object:
        if not isinstance(name, str) or name not in self.runs:
            raise BadRequest(f"no run named {str(name)[:200]!r} is served", 404)
        return self.runs[name]

    async def loaded(self, name: str, task: str):
        loaded = await run_in_threadpool(self.cache.get, self.run(name))
        if loaded.task != task:
            raise BadRequest(f"run {name!r} is {head(loaded.task).title}, not {head(task).title}")
        return loaded


def error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def read_json(request: Request) -> dict:
    """The request body as a JSON object, read no further than the size limit."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.MAX_BODY_BYTES:
        raise BadRequest(f"the request body is larger than the limit of {limits.MAX_BODY_BYTES} bytes", 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limits.MAX_BODY_BYTES:
            raise BadRequest(f"the request body is larger than the limit of {limits.MAX_BODY_BYTES} bytes", 413)
    return limits.parse_json(bytes(body))


def event(kind: str, data: dict) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def create_app(directories, max_generations: int = 16, max_models: int = 4) -> Starlette:
    """The studio as an ASGI app over the runs found under `directories` at start-up (the table
    every request is looked up in), with at most `max_generations` streams at once and
    `max_models` loaded models kept."""
    studio = Studio(directories, max_generations, max_models)
    files = static_files()

    async def page(request: Request):
        if request.url.path in POST_ROUTES:
            return error(f"{request.url.path} takes POST with a JSON body", 405)
        found = files.get(request.url.path)
        if found is None:
            return error("not found", 404)
        return Response(found[0], media_type=found[1], headers={"Cache-Control": "no-cache"})

    async def list_runs(request: Request):
        runs = await run_in_threadpool(lambda: [describe(r) for r in studio.runs.values()])
        return JSONResponse({"runs": runs})

    async def run_metrics(request: Request):
        run = studio.run(request.path_params["name"])
        return JSONResponse({"run": run.name, "metrics": await run_in_threadpool(read_metrics, run)})

    async def status(request: Request):
        return JSONResponse({**studio.counts, "limit": studio.max_generations, "models_loaded": studio.cache.loads})

    async def generate(request: Request):
        p = limits.fields(await read_json(request), limits.GENERATE)
        if p["n_best"] > p["beam"]:
            raise BadRequest(f"n_best ({p['n_best']}) must not exceed beam ({p['beam']})")
        if p["beam"] > 1 and p["length"] > limits.MAX_BEAM_LENGTH:
            raise BadRequest(f"length is more than the limit of {limits.MAX_BEAM_LENGTH} for beam search")
        if not studio.slots.acquire(blocking=False):
            return error(f"the studio is busy: {studio.max_generations} generations are running (its limit, "
                         "--max-generations); try again shortly", 503)
        try:
            loaded = await studio.loaded(p["run"], "lm")
            if p["seed"] is None:
                p["seed"] = int(time.time() * 1000) % 2**31
            await run_in_threadpool(loaded.probe.check, p["prompt"], p["temperature"], p["top_k"], p["top_p"],
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
                    hyps = loaded.beam(p["prompt"], length=p["length"], beam=p["beam"], n_best=p["n_best"],
                                       unknown=p["unknown"], should_stop=stop.is_set)
                    tokens = loaded.probe.report(p["prompt"], hyps[0][0], p["unknown"]) if hyps else []
                    put("chunk", {"tokens": tokens})
                    extra = {"hypotheses": [{"text": t, "log_prob": round(lp, 5)} for t, lp in hyps]}
                else:
                    for chunk in loaded.probe.stream(p["prompt"], p["length"], p["temperature"], p["top_k"],
                                                     p["top_p"], p["seed"], p["greedy"], p["unknown"],
                                                     should_stop=stop.is_set):
                        tokens += chunk
                        put("chunk", {"tokens": chunk})
                    extra = {"seed": p["seed"]}
                studio.count(stopped=int(stop.is_set()), finished=int(not stop.is_set()))
                put("done", {"text": "".join(t["text"] for t in tokens), "tokens": len(tokens),
                             "seconds": round(time.perf_counter() - start, 3), **extra})
            except CharseqError as e:
                put("error", {"error": limits.in_request_terms(e, limits.GENERATE)})
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
        p = limits.fields(await read_json(request), limits.ANALYZE)
        loaded = await studio.loaded(p["run"], "lm")
        return JSONResponse(await run_in_threadpool(loaded.probe.analyze, p["text"], p["layer"]))

    async def classify(request: Request):
        from charseq.heads.classifier.inspect import explain_image, explain_text

        p = limits.fields(await read_json(request), limits.CLASSIFY)
        if (p["text"] is None) == (p["image"] is None):
            raise BadRequest("give either text or image")
        loaded = await studio.loaded(p["run"], "classifier")
        model, vocab, config = loaded.classifier
        if p["text"] is not None:
            if vocab is None:
                raise BadRequest(f"run {p['run']!r} classifies images: send image, not text")
            return JSONResponse(await run_in_threadpool(explain_text, model, vocab, config, p["text"]))
        if vocab is not None:
            raise BadRequest(f"run {p['run']!r} classifies texts: send text, not image")
        image = p["image"]
        if not all(isinstance(row, list) and len(row) == 28 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in row) for row in image):
            raise BadRequest("image must be a list of up to 28 rows, each of 28 numbers (pixel values 0-255)")
        return JSONResponse(await run_in_threadpool(explain_image, model, config, image))

    async def translate(request: Request):
        from charseq.heads.seq2seq.inspect import explain_translation

        p = limits.fields(await read_json(request), limits.TRANSLATE)
        if p["n_best"] > p["beam"]:
            raise BadRequest(f"n_best ({p['n_best']}) must not exceed beam ({p['beam']})")
        loaded = await studio.loaded(p["run"], "seq2seq")
        return JSONResponse(await run_in_threadpool(
            explain_translation, loaded.translator, p["source"], p["beam"], p["n_best"], p["length_penalty"],
            "error", p["choose"]))

    async def bad_request(request: Request, exc: BadRequest):
        return error(str(exc), exc.status)

    async def library_error(request: Request, exc: CharseqError):
        return error(limits.in_request_terms(exc, REQUEST_FIELDS.get(request.url.path, {})), 400)

    async def http_error(request: Request, exc: HTTPException):
        return error(exc.detail if exc.status_code != 404 else "not found", exc.status_code)

    async def server_error(request: Request, exc: Exception):
        log.error("error answering %s %s", request.method, request.url.path, exc_info=exc)
        return error("internal error (see the server's log)", 500)

    routes = [
        Route("/api/runs", list_runs),
        Route("/api/runs/{name:path}/metrics", run_metrics),
        Route("/api/status", status),
        Route("/api/generate", generate, methods=["POST"]),
        Route("/api/analyze", analyze, methods=["POST"]),
        Route("/api/classify", classify, methods=["POST"]),
        Route("/api/translate", translate, methods=["POST"]),
        Route("/{path:path}", page),
    ]
    app = Starlette(routes=routes, exception_handlers={
        BadRequest: bad_request, CharseqError: library_error, HTTPException: http_error, Exception: server_error})
    app.state.studio = studio
    return app


def serve(directories, host: str = "127.0.0.1", port: int = 8000, max_generations: int = 16, max_models: int = 4,
          echo=print) -> None:
    """Serve `directories` until interrupted. Binds the socket first, so a port in use is a
    one-line error, and --port 0 picks a free port (the URL printed says which)."""
    import socket

    import uvicorn

    if not 0 <= port <= 65535:  # the socket would raise OverflowError
        raise CharseqError(f"--port must be between 0 and 65535 (0: any free port), not {port}")
    app = create_app(directories, max_generations, max_models)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise CharseqError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(128)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    runs = app.state.studio.runs
    echo(f"charseq studio: {len(runs)} run{'s' if len(runs) != 1 else ''} on http://{shown}:{bound}/  (Ctrl-C stops)")
    sys.stdout.flush()
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2)
    uvicorn.Server(config).run(sockets=[sock])
