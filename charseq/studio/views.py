"""How a head's view plugs into the studio: its tabs, request fields, routes and examples.

A head with a studio view names its module in its registry entry (``Head.studio``). That module
(``charseq/heads/<head>/studio.py``) holds:

    PAGES     the tabs it adds, each a :class:`charseq.web.Page`: an HTML fragment and a JS module
              in the head's ``page/`` folder (served as /static/heads/<task>/<file>)
    FIELDS    {POST route: {field: charseq.web.Field}}, the bodies its routes take
    routes(studio) -> [starlette Route]   its API routes, each calling one library function
    validation(run, config) -> data       the run's validation data, split again as training split it
    data_files(run, config) -> [path]     the files `validation` reads
    examples(data, config, n) -> [dict]   up to n one-click examples from that data

The studio reads a run's validation data once (``await studio.validation(run)``, which a route
may use too) and again only when the run's directory, its config.json or those files change.

A view builds on :mod:`charseq.web` (request fields, JSON errors, events) and never imports the
studio: the studio imports the heads. The studio itself names no head: it builds the page, the
routes and the examples endpoint from these tables.
"""

from __future__ import annotations

import functools
import html
import importlib
import json
from dataclasses import dataclass
from importlib import resources
from types import ModuleType

from charseq.heads import all_heads
from charseq.web import Page


@dataclass(frozen=True)
class HeadView:
    task: str
    module: ModuleType

    @property
    def pages(self) -> tuple[Page, ...]:
        return tuple(getattr(self.module, "PAGES", ()))

    def folder(self):
        return resources.files(self.module.__name__.rsplit(".", 1)[0]) / "page"


@functools.cache
def head_views() -> tuple[HeadView, ...]:
    """The studio view of every head that has one, in the registry's order."""
    return tuple(HeadView(h.task, importlib.import_module(h.studio)) for h in all_heads() if h.studio)


def view_of(task: str) -> HeadView | None:
    return next((v for v in head_views() if v.task == task), None)


def page_files(content_types: dict) -> dict[str, tuple[bytes, str]]:
    """Every head's page files: URL path -> (content, type)."""
    table = {}
    for view in head_views():
        for item in view.folder().iterdir():
            suffix = "." + item.name.rsplit(".", 1)[-1]
            if item.is_file() and suffix in content_types:
                table[f"/static/heads/{view.task}/{item.name}"] = (item.read_bytes(), content_types[suffix])
    return table


def assemble_index(index: str) -> str:
    """The page with each head's tabs put in: links where <!-- head links --> stands, sections where
    <!-- head pages --> stands, and the list of view modules app.js imports."""
    links, sections, scripts = [], [], []
    for view in head_views():
        for page in view.pages:
            fragment = (view.folder() / page.html).read_text(encoding="utf-8")
            links.append(f'<a href="#{page.id}" id="nav-{page.id}">{html.escape(page.title)}</a>')
            sections.append(f'<section id="page-{page.id}" class="page">\n{fragment}</section>')
            scripts.append({"page": page.id, "task": view.task, "script": f"/static/heads/{view.task}/{page.script}"})
    listing = json.dumps(scripts).replace("</", "<\\/")
    return (index.replace("<!-- head links -->", "\n    ".join(links))
            .replace("<!-- head pages -->", "\n\n".join(sections))
            .replace("<!-- head scripts -->", f'<script type="application/json" id="head-pages">{listing}</script>'))


def request_fields() -> dict[str, dict]:
    """Every head's POST routes and the fields their bodies may have."""
    return {route: spec for view in head_views() for route, spec in getattr(view.module, "FIELDS", {}).items()}
