"""MkDocs hooks for the command-line reference (mkdocs-click): a help paragraph that click keeps as
written (marked by a `\\b` line) becomes a code block, and angle brackets in help text (`<TAB>`) are
shown as text rather than read as HTML. In the Python reference, a train function's settings are
listed from its command's options."""

import html
import re

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


# The Python reference's list of the settings a train function takes as keywords: each with its
# command-line option's help and default, from the click command itself, so the two never differ.
SETTINGS_MARKER = re.compile(r"^<!-- settings of ([\w-]+) -->$", re.M)


def _settings_list(command_name: str) -> str:
    import inspect

    import click

    from charseq.cli import main
    from charseq.heads import train_commands
    from charseq.settings import keywords

    command, train = main.commands[command_name], train_commands()[command_name]
    explained = set(inspect.signature(train).parameters)  # its own parameters, which its docstring describes
    options = {p.name: p for p in command.params if isinstance(p, click.Option)}
    ctx = click.Context(command, info_name=command_name)
    lines = [f"**Settings** (keyword arguments; `charseq {command_name}`'s options, with underscores):", ""]
    for name in keywords(train.__name__, train):
        if name in explained or name not in options:
            continue
        _, help_text = options[name].get_help_record(ctx)
        help_text = re.sub(r"--([a-z][a-z0-9-]*)", lambda m: m[1].replace("-", "_"), help_text)  # as keywords
        lines.append(f"- `{name}`: {html.escape(help_text, quote=False)}")
    return "\n".join(lines) + "\n"


def on_page_markdown(markdown, page, **kwargs):
    return SETTINGS_MARKER.sub(lambda m: _settings_list(m.group(1)), markdown)
