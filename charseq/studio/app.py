"""The studio's HTTP layer: parse and bound a request, call one library function, shape the JSON.

    app = create_app(["runs/"])          # an ASGI app (Starlette); `charseq serve` runs it on uvicorn

Routes (all JSON; errors are ``{"error": "..."}`` with a 4xx status, never a traceback):

    GET  /api/runs                   every served run: name, task, shape, data, best score, status, progress;
                                     and "heads", the tasks of the runs served
    GET  /api/runs/{name}            that run alone, as /api/runs lists it
    GET  /api/runs/{name}/metrics    that run's evaluations (metrics.jsonl)
    GET  /api/runs/{name}/examples   ?n=8: one-click examples from the run's validation data (its head says
                                     what an example is: a prompt, a text or image with its label, a source;
                                     the data is read once per run and again only when the run changes)
    GET  /api/status                 generations running and the limit, models loaded

and each head's own routes (its studio view, charseq.studio.views: /api/generate and /api/analyze
for a language model, /api/classify, /api/translate).

Model work runs in worker threads, never on the event loop. Generations are bounded: past
`max_generations` running at once, /api/generate answers 503. A client that disconnects stops
its generation at the next chunk. The served folders are rescanned every few seconds, so runs
trained after start-up appear and deleted ones go.

Safe by default, as Jupyter Server is: requests whose Host header does not name this machine
(a DNS-rebinding page) get 403; API requests from another origin (their Origin, or a browser's
Sec-Fetch-Site, says so) get 403; a POST to a route that takes one without `Content-Type: application/json` (the only
kind of body another site's page cannot send without the browser asking first) gets 415; and
with a token (always on an address other than loopback) a request without it gets 401. The
token comes in the URL once (`/?token=...`, then an HttpOnly SameSite=Strict cookie), or in an
`Authorization: Token ...` or `X-Charseq-Token` header.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import re
import secrets
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import URL
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Match, Route

from charseq.errors import CharseqError
from charseq.heads import head
from charseq.studio.runs import (ModelCache, RunTable, Validation, ValidationCache, describe, message_without_paths,
                                 read_metrics)
from charseq.studio.views import assemble_index, head_views, page_files, request_fields, view_of
from charseq.web import BadRequest, error, in_request_terms, query

log = logging.getLogger("charseq.studio")
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")  # Host header names of this machine, any port
TOKEN_CHARACTERS = re.compile(r"[A-Za-z0-9._~-]{8,200}")  # safe in a URL, a header and a cookie as they are
TOKEN_HEADER = "x-charseq-token"
EXAMPLES, MAX_EXAMPLES = 8, 50  # one-click examples a run's page asks for, and the most it may


def static_files() -> dict[str, tuple[bytes, str]]:
    """The page's files and each head's (charseq.studio.views), read into memory once: URL path ->
    (content, type). Requests are answered from this table, so no request path ever reaches the
    file system."""
    table = {}
    folder = resources.files("charseq.studio") / "static"
    for item in folder.iterdir():
        suffix = "." + item.name.rsplit(".", 1)[-1]
        if item.is_file() and suffix in CONTENT_TYPES:
            table[f"/static/{item.name}"] = (item.read_bytes(), CONTENT_TYPES[suffix])
    table.update(page_files(CONTENT_TYPES))
    index, kind = table["/static/index.html"]
    table["/"] = table["/static/index.html"] = (assemble_index(index.decode("utf-8")).encode("utf-8"), kind)
    return table


NOT_FOUND_PAGE = "/static/not-found.html"


def wants_a_page(request: Request) -> bool:
    """Whether a request is a browser's, for a page (API clients are answered in JSON, whatever they accept)."""
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get("accept", "")


@functools.cache
def chart_library() -> bytes | None:
    """plotly.js as the installed `plotly` package ships it (the charts' library; nothing is
    downloaded at run time), or None when that package is not installed."""
    try:
        return (resources.files("plotly") / "package_data" / "plotly.min.js").read_bytes()
    except (ImportError, OSError):
        return None


class Studio:
    """The served runs, the model cache and the generation slots behind the routes."""

    def __init__(self, directories, max_generations: int = 16, max_models: int = 4, show_paths: bool = False):
        if max_generations < 1:
            raise CharseqError(f"--max-generations must be at least 1, not {max_generations}")
        self.cache = ModelCache(max_models)
        self.validation_sets = ValidationCache()
        self.table = RunTable(directories, gone=self.forget)
        self.show_paths = show_paths
        self.max_generations = max_generations
        self.slots = threading.BoundedSemaphore(max_generations)
        self.executor = ThreadPoolExecutor(max_workers=max_generations, thread_name_prefix="generate")
        self.counts = {"started": 0, "finished": 0, "stopped": 0, "running": 0}
        self._counts_lock = threading.Lock()

    def count(self, **changes) -> None:
        with self._counts_lock:
            for key, delta in changes.items():
                self.counts[key] += delta

    @property
    def runs(self) -> dict:
        """The served runs now (rescanned if the last scan is a few seconds old)."""
        return self.table.current()

    def run(self, name, task: str | None = None) -> object:
        runs = self.runs
        if name == "":
            if task is not None and not any(describe_task(r) == task for r in runs.values()):
                raise BadRequest(f"no run is chosen, and none of the served runs is {head(task).title}: "
                                 "train one into a served folder and it appears within seconds", 404)
            raise BadRequest("no run is chosen: run is empty; give the name of a served run")
        if not isinstance(name, str) or name not in runs:
            raise BadRequest(f"no run named {str(name)[:200]!r} is served", 404)
        if not runs[name].path.is_dir():  # deleted since the last scan, which has not noticed yet
            raise BadRequest(f"no run named {name[:200]!r} is served: its directory was deleted", 404)
        return runs[name]

    async def loaded(self, name: str, task: str):
        run = await run_in_threadpool(self.run, name, task)
        loaded = await run_in_threadpool(self.cache.get, run)
        if loaded.task != task:
            raise BadRequest(f"run {name!r} is {head(loaded.task).title}, not {head(task).title}")
        return loaded

    async def validation(self, run) -> Validation:
        """The run's validation data as its head's view reads it: read once, and again only when the
        run or its data changes (charseq.studio.runs.ValidationCache)."""
        return await run_in_threadpool(self.validation_sets.get, run)

    def forget(self, name: str) -> None:
        """A run went: drop its model and its validation data (a request still using them keeps them)."""
        self.cache.drop(name)
        self.validation_sets.drop(name)

    def hide_paths(self, message: str) -> str:
        return message_without_paths(message, [r.base for r in self.runs.values()], self.show_paths)


def describe_task(run) -> str | None:
    """The task a run's config.json names (None if it cannot be read)."""
    from charseq.runs import RunDir

    try:
        return RunDir(run.path).read_config()["task"]
    except CharseqError:
        return None


# ---------------------------------------------------------------------------- safe by default
class TrustedHosts:
    """Starlette's TrustedHostMiddleware (a Host header that does not name this machine is a page
    from another site reaching it through DNS rebinding), answering its refusal in the API's JSON."""

    def __init__(self, app, allowed_hosts):
        self.app = app
        self.check = TrustedHostMiddleware(self.passed, allowed_hosts=list(allowed_hosts), www_redirect=False)

    async def passed(self, scope, receive, send):
        scope["charseq.host_checked"] = True
        await self.app(scope, receive, send)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def refuse_or_pass(message):
            if scope.get("charseq.host_checked"):
                await send(message)
            elif message["type"] == "http.response.start":  # refused: our answer instead of Starlette's text
                host = Request(scope).headers.get("host", "")
                await error(f"the Host header {host[:200]!r} does not name this machine, so the request is refused "
                            "(start charseq serve with --allow-host NAME to accept that name)", 403)(
                    scope, receive, send)
        await self.check(scope, receive, refuse_or_pass)


class Guard:
    """What another site's page could send is refused before any route runs: an API request from
    another origin (403), a POST body that is not JSON (415), and, when the studio has a token, a
    request without it (401). A page request with ?token=... gets the token as a cookie
    (HttpOnly, SameSite=Strict) and is sent on to the same page without it in the URL."""

    def __init__(self, app, token: str | None = None, json_routes=None):
        # The routes that take a JSON body: a POST to any other is a 405 saying which methods it takes,
        # not a 415 asking for a JSON body it would refuse all the same.
        self.app, self.token, self.json_routes = app, token, json_routes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refused = self.refusal(request)
        if refused is not None:
            await refused(scope, receive, send)
            return
        if self.token and "token" in request.query_params and not request.url.path.startswith("/api/") \
                and request.method == "GET":
            query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
            response = RedirectResponse(request.url.path + (f"?{query}" if query else ""), status_code=303)
            response.set_cookie(cookie_name(request), self.token, httponly=True, samesite="strict", path="/")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def refusal(self, request: Request) -> Response | None:
        headers = request.headers
        if request.url.path.startswith("/api/"):
            origin = headers.get("origin")
            if origin is not None:
                if URL(origin).netloc.lower() != headers.get("host", "").lower():
                    return error(f"a request from another origin ({origin[:200]}) is refused: the studio answers "
                                 "only its own page", 403)
            elif headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
                return error(f"a {headers['sec-fetch-site'][:50]} request is refused: the studio answers only "
                             "its own page", 403)
        if self.token and not self.has_token(request):
            return error("this studio needs its token: open the URL charseq serve printed (it ends in ?token=...), "
                         "or send the header 'Authorization: Token ...'", 401)
        if request.method == "POST" and (self.json_routes is None or request.url.path in self.json_routes):
            kind = headers.get("content-type", "").split(";")[0].strip().lower()
            if kind != "application/json":
                return error(f"a POST body must be JSON, sent with Content-Type: application/json, not "
                             f"{kind[:100] or 'none'}", 415)
        return None

    def has_token(self, request: Request) -> bool:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        given = [request.query_params.get("token"), request.headers.get(TOKEN_HEADER),
                 value.strip() if scheme.lower() == "token" else None, request.cookies.get(cookie_name(request))]
        return any(g is not None and secrets.compare_digest(g.encode(), self.token.encode()) for g in given)


def cookie_name(request: Request) -> str:
    """The token's cookie, one per port (browsers share cookies among a host's ports)."""
    return f"charseq-token-{request.url.port or 80}"


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_token(token: str) -> str:
    if not TOKEN_CHARACTERS.fullmatch(token):
        raise CharseqError("--token must be 8 to 200 letters, digits or the characters . _ ~ -")
    return token


def allowed_hosts(host: str, extra=()) -> list[str]:
    """The Host header names accepted when listening on `host`: this machine's loopback names,
    `host` itself, this machine's name and addresses when `host` is every interface (0.0.0.0,
    ::), and the names in `extra` ("*": any name, "*.example.org": its subdomains)."""
    names = [*LOOPBACK_HOSTS, f"[{host}]" if ":" in host else host]
    if host in ("0.0.0.0", "::", ""):
        name = socket.gethostname()
        names.append(name)
        try:
            names += [f"[{a[4][0]}]" if ":" in a[4][0] else a[4][0] for a in socket.getaddrinfo(name, None)]
        except OSError:  # the machine cannot resolve its own name: the names in `extra` still work
            pass
        try:  # the address other machines reach this one at (connecting a UDP socket sends nothing)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.connect(("10.255.255.255", 1))
                names.append(probe.getsockname()[0])
        except OSError:
            pass
    for name in extra:
        if name.count("*") > 1 or ("*" in name and not (name == "*" or name.startswith("*."))):
            raise CharseqError(f"--allow-host {name}: a wildcard must be '*' or like '*.example.org'")
        names.append(f"[{name}]" if ":" in name and not name.startswith("[") else name)
    return list(dict.fromkeys(n.lower() for n in names if n))


def create_app(directories: list[str | os.PathLike], max_generations: int = 16, max_models: int = 4,
               token: str | None = None, hosts=LOOPBACK_HOSTS, show_paths: bool = False) -> Starlette:
    """The studio as an ASGI app over the runs under `directories` (rescanned every few seconds:
    the table every request is looked up in), with at most `max_generations` streams at once and
    `max_models` loaded models kept. Requests must name one of `hosts` in their Host header and,
    with a `token`, carry it; absolute paths are shown to the browser only with `show_paths`."""
    studio = Studio(directories, max_generations, max_models, show_paths)
    if token is not None:
        check_token(token)
    files = static_files()
    fields = request_fields()  # each POST route and the fields its JSON body may have

    async def page(request: Request):
        if request.url.path in fields:
            return error(f"{request.url.path} takes POST with a JSON body, not {request.method}", 405,
                         headers={"Allow": "POST"})
        found = files.get(request.url.path)
        if found is None and wants_a_page(request):  # a mistyped address in the browser: a page, with a way back
            return Response(files[NOT_FOUND_PAGE][0], 404, media_type=files[NOT_FOUND_PAGE][1])
        if found is None:
            return error("not found", 404)
        return Response(found[0], media_type=found[1], headers={"Cache-Control": "no-cache"})

    async def plotly_js(request: Request):
        content = await run_in_threadpool(chart_library)
        if content is None:
            return error("the charts need the plotly package: pip install 'charseq[studio]'", 404)
        return Response(content, media_type=CONTENT_TYPES[".js"], headers={"Cache-Control": "max-age=3600"})

    async def list_runs(request: Request):
        query(request)
        runs = await run_in_threadpool(lambda: [describe(r, show_paths) for r in studio.runs.values()])
        heads = sorted({r["task"] for r in runs if r["task"] != "unreadable"})
        return JSONResponse({"runs": runs, "heads": heads})

    async def one_run(request: Request):
        query(request)
        run = await run_in_threadpool(studio.run, request.path_params["name"])
        return JSONResponse(await run_in_threadpool(describe, run, show_paths))

    async def run_metrics(request: Request):
        query(request)
        run = await run_in_threadpool(studio.run, request.path_params["name"])
        return JSONResponse({"run": run.name, "metrics": await run_in_threadpool(read_metrics, run)})

    async def run_examples(request: Request):
        n = query(request, "n").get("n", str(EXAMPLES))
        run = await run_in_threadpool(studio.run, request.path_params["name"])
        if not n.isdigit() or not 1 <= int(n) <= MAX_EXAMPLES:
            raise BadRequest(f"n must be a whole number from 1 to {MAX_EXAMPLES}, not {n[:20]!r}")
        found = []
        if await run_in_threadpool(describe_task, run) is not None:  # a run that cannot be read has none
            validation = await studio.validation(run)
            view = view_of(validation.config["task"])
            if validation.data is not None and hasattr(view.module, "examples"):
                found = await run_in_threadpool(view.module.examples, validation.data, validation.config, int(n))
        return JSONResponse({"run": run.name, "examples": found})

    async def status(request: Request):
        query(request)
        return JSONResponse({**studio.counts, "limit": studio.max_generations, "models_loaded": studio.cache.loads})

    async def bad_request(request: Request, exc: BadRequest):
        return error(studio.hide_paths(str(exc)), exc.status)

    async def library_error(request: Request, exc: CharseqError):
        return error(studio.hide_paths(in_request_terms(exc, fields.get(request.url.path, {}))), 400)

    async def http_error(request: Request, exc: HTTPException):
        headers = dict(exc.headers or {})
        if exc.status_code == 404 or (exc.status_code == 405 and not addressed(request)):
            return error("not found", 404)
        if exc.status_code == 405 and "Allow" in headers:  # the Allow header is what a 405 must carry
            return error(f"{request.url.path[:200]} takes {' or '.join(sorted(headers['Allow'].split(', ')))}, not "
                         f"{request.method}", 405, headers=headers)
        return error(exc.detail, exc.status_code, headers=headers)

    def addressed(request: Request) -> bool:
        """Whether the path is one of the API's routes or of the page's files. Any other path matches
        only the page's catch-all route, which takes GET: a POST to it is a 404, not a 405 saying GET."""
        return request.url.path in files or any(
            route.matches(request.scope)[0] != Match.NONE for route in routes if route is not routes[-1])

    async def server_error(request: Request, exc: Exception):
        log.error("error answering %s %s", request.method, request.url.path, exc_info=exc)
        return error("internal error (see the server's log)", 500)

    routes = [
        Route("/api/runs", list_runs),
        Route("/api/runs/{name:path}/metrics", run_metrics),
        Route("/api/runs/{name:path}/examples", run_examples),
        Route("/api/runs/{name:path}", one_run),  # after the two above, which a name of any depth would swallow
        Route("/api/status", status),
        *(route for view in head_views() for route in view.module.routes(studio)),
        Route("/lib/plotly.min.js", plotly_js),
        Route("/{path:path}", page),
    ]
    middleware = [Middleware(TrustedHosts, allowed_hosts=hosts),
                  Middleware(Guard, token=token, json_routes=set(fields))]
    app = Starlette(routes=routes, middleware=middleware, exception_handlers={
        BadRequest: bad_request, CharseqError: library_error, HTTPException: http_error, Exception: server_error})
    app.state.studio = studio
    return app


def serve(directories: list[str | os.PathLike], host: str = "127.0.0.1", port: int = 8000, max_generations: int = 16,
          max_models: int = 4, token: str | None = None, allow_hosts=None, show_paths: bool = False,
          echo=print) -> None:
    """Serve `directories` until interrupted. Binds the socket first, so a port in use is a
    one-line error, and --port 0 picks a free port (the URL printed says which).

    The studio listens on `host` (loopback unless told otherwise) and `port`. On an address other
    than loopback the studio needs a token (`token`, or a random one): the URL printed carries it.
    `allow_hosts` adds Host header names to accept (see allowed_hosts). `max_generations` bounds the
    generations running at once (more get HTTP 503), `max_models` the models kept loaded;
    the page shows the runs' absolute paths only with `show_paths`; `echo` receives the lines
    printed (the URL first)."""
    import uvicorn

    if not 0 <= port <= 65535:  # the socket would raise OverflowError
        raise CharseqError(f"--port must be between 0 and 65535 (0: any free port), not {port}")
    if token is None and not is_loopback(host):
        token = secrets.token_urlsafe(24)
    hosts = allowed_hosts(host, allow_hosts or ())
    app = create_app(directories, max_generations, max_models, token=token, hosts=hosts, show_paths=show_paths)
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
    shown = socket.gethostname() if host in ("0.0.0.0", "::") else f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}/" + (f"?token={token}" if token else "")
    runs = app.state.studio.runs
    echo(f"charseq studio: {len(runs)} run{'s' if len(runs) != 1 else ''} on {url}  (Ctrl-C stops)")
    if not runs:
        missing = [str(d) for d in directories if not Path(d).is_dir()]
        echo(f"no runs yet under {', '.join(map(str, directories))}" + (
            f" ({', '.join(missing)} {'does' if len(missing) == 1 else 'do'} not exist yet)" if missing else "")
             + "; waiting: runs appear here within seconds of being trained")
    sys.stdout.flush()
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down, then raises the Ctrl-C again: the way to stop, not an error
        echo("charseq studio: stopped")
