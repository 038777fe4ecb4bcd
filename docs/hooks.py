"""MkDocs hooks for the command-line reference (mkdocs-click): a help paragraph that click keeps as
written (marked by a `\\b` line) becomes a code block, and angle brackets in help text (`<TAB>`) are
shown as text rather than read as HTML."""

import html

import mkdocs_click._docs as click_docs

_describe = click_docs._make_description
_subcommands = click_docs._make_subcommands_links


def _make_description(ctx, remove_ascii_art=False):
    verbatim = False
    for line in _describe(ctx, remove_ascii_art):
        if line.strip() == "\b":
            verbatim = True
            yield "```text"
            continue
        if verbatim and not line.strip():
            verbatim = False
            yield "```"
        yield line if verbatim else html.escape(line, quote=False)
    if verbatim:
        yield "```"


def _make_subcommands_links(*args, **kwargs):
    for line in _subcommands(*args, **kwargs):
        name, sep, help_text = line.partition("*: ")
        yield name + sep + html.escape(help_text, quote=False) if sep else line


def on_config(config):
    click_docs._make_description = _make_description
    click_docs._make_subcommands_links = _make_subcommands_links
    return config
