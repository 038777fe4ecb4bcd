"""The classifier in the studio: the Classify tab and its route.

    POST /api/classify   label, probabilities, occlusion saliency (text) or per-row probabilities (image)
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from charseq.studio import limits
from charseq.studio.limits import RUN, BadRequest, Field
from charseq.studio.views import Page, read_json

TASK = "classifier"

PAGES = (Page("classify", "Classify", "classify.html", "classify.js"),)
CLASSIFY = {
    "run": RUN,
    "text": Field(str, None, low=1, high=limits.MAX_CLASSIFY_CHARS),
    "image": Field(list, None, low=1, high=28),
}
FIELDS = {"/api/classify": CLASSIFY}


def routes(studio) -> list[Route]:
    async def classify(request: Request):
        from charseq.heads.classifier import inspect

        p = limits.fields(await read_json(request), CLASSIFY)
        if (p["text"] is None) == (p["image"] is None):
            raise BadRequest("give either text or image")
        loaded = await studio.loaded(p["run"], TASK)
        model, vocab, config = loaded.parts["classifier"]
        if p["text"] is not None:
            if vocab is None:
                raise BadRequest(f"run {p['run']!r} classifies images: send image, not text")
            return JSONResponse(await run_in_threadpool(inspect.explain_text, model, vocab, config, p["text"]))
        if vocab is not None:
            raise BadRequest(f"run {p['run']!r} classifies texts: send text, not image")
        image = p["image"]
        if not all(isinstance(row, list) and len(row) == 28 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in row) for row in image):
            raise BadRequest("image must be a list of up to 28 rows, each of 28 numbers (pixel values 0-255)")
        return JSONResponse(await run_in_threadpool(inspect.explain_image, model, config, image))

    return [Route("/api/classify", classify, methods=["POST"])]
