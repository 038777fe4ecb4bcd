"""The documentation: the MkDocs site builds with --strict (offline), every `charseq` command shown in
README.md and docs/ names a real command and real options, and the blocks marked `<!-- tested -->`
run as written (with a few training steps instead of minutes)."""

import os
import re
import shlex
import subprocess
import sys

import pytest

from helpers import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
TESTED = "<!-- tested -->"
FENCE = re.compile(r"^(<!-- tested -->\n)?```(\w*)\n(.*?)^```", re.M | re.S)
SHELL_BREAKS = ("|", "||", "&&", ";", ">", ">>", "<", "2>")


def code_blocks(page):
    """(language, code, tested) of each fenced block of a Markdown page."""
    return [(m.group(2), m.group(3), bool(m.group(1))) for m in FENCE.finditer(page.read_text(encoding="utf-8"))]


def command_lines(code: str) -> list[list[str]]:
    """Each `charseq ...` command of a shell block, as argv (comments, prompts, environment
    assignments and whatever follows a pipe or redirection left out)."""
    commands = []
    for line in code.replace("\\\n", " ").splitlines():
        line = line.strip().removeprefix("$ ")
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        while words and re.match(r"^[A-Z_]+=", words[0]):
            words.pop(0)
        if not words or words[0] not in ("charseq", ".venv/bin/charseq"):
            continue
        for i, word in enumerate(words):
            if word in SHELL_BREAKS:
                words = words[:i]
                break
        commands.append(words)
    return commands


def options_of(command) -> set[str]:
    names = {"--help", "-h"}
    for param in command.params:
        names.update(param.opts)
        names.update(param.secondary_opts)
    return names


def test_every_documented_command_and_option_exists():
    import click

    from charseq.cli import main

    seen, wrong = 0, []
    for page in PAGES:
        for language, code, _ in code_blocks(page):
            if language not in ("bash", "console", "sh", ""):
                continue
            for argv in command_lines(code):
                seen += 1
                where = f"{page.relative_to(REPO)}: {shlex.join(argv)}"
                if len(argv) < 2 or argv[1] in ("--help", "-h", "--version"):
                    continue
                command = main.commands.get(argv[1])
                if command is None:
                    wrong.append(f"{where}: no command {argv[1]!r}")
                    continue
                rest = argv[2:]
                while isinstance(command, click.Group) and rest and rest[0] in command.commands:
                    command, rest = command.commands[rest[0]], rest[1:]
                allowed = options_of(command)
                if argv[1] == "grid" and rest and rest[0] in main.commands:
                    allowed |= options_of(main.commands[rest[0]])
                for word in rest:
                    if re.match(r"^--?[a-zA-Z]", word) and word.split("=")[0] not in allowed:
                        wrong.append(f"{where}: {argv[1]} has no option {word.split('=')[0]}")
    assert seen > 50, f"only {seen} charseq commands found in the docs"
    assert not wrong, "\n".join(wrong)


def test_every_pip_install_shown_installs_the_clone():
    """charseq is installed from a clone of its repository, not from a package index, so every
    `pip install` the pages show installs the checkout (`-e .`, `-e '.[studio]'`), never `charseq`."""
    wrong = []
    for page in PAGES:
        for line in page.read_text(encoding="utf-8").splitlines():
            for args in re.findall(r"pip install ([^`#\n]*)", line):
                if any(word.startswith("charseq") for word in shlex.split(args)):
                    wrong.append(f"{page.relative_to(REPO)}: {line.strip()}")
    assert not wrong, "\n".join(wrong)


def test_what_the_python_reference_documents_is_importable_from_charseq():
    """The page promises that every function and class it shows is `charseq.NAME`."""
    import charseq

    shown = re.findall(r"^::: charseq\.[\w.]*\.(\w+)$", (REPO / "docs/reference/python.md").read_text(), re.M)
    assert len(shown) > 20 and [name for name in shown if name not in charseq.__all__] == []


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site, built with --strict (a broken link or reference fails the build)."""
    site = tmp_path_factory.mktemp("docs") / "site"
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_MKDOCS_2_WARNING": "1"}
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(REPO / "mkdocs.yml"),
                        "--site-dir", str(site)], cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return site


def test_the_site_builds_strictly_and_offline(site):
    # The command-line reference is generated from the click commands: every command, with its options.
    from charseq.cli import main

    cli = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    for name, command in main.commands.items():
        assert f"charseq {name} [OPTIONS]" in cli, name
        assert all(opt in cli for p in command.params for opt in p.opts if opt.startswith("--")), name
    # The Python reference is generated from the docstrings.
    api = (site / "reference" / "python" / "index.html").read_text(encoding="utf-8")
    for name in ("train_lm", "generate", "train_classifier", "classify", "train_seq2seq", "translate", "RecurrentBackbone"):
        assert re.search(rf'id="charseq\.[\w.]*\b{name}"', api), name
    # Offline: the pages load no web fonts or scripts from elsewhere.
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "fonts.googleapis" not in text and "fonts.gstatic" not in text, page
        assert not re.search(r'<(script|link)[^>]+(src|href)="https?://', text), page


def test_the_python_reference_shows_the_values_of_defaults(site):
    """A default the code takes from a named constant (`length=DEFAULTS.length`) is shown as its
    value (`length: int = 200`), as Keras' reference shows `epochs=1`."""
    import html
    import inspect

    import charseq

    api = (site / "reference" / "python" / "index.html").read_text(encoding="utf-8")
    signatures = [html.unescape(re.sub(r"<[^>]+>", "", code)) for code in
                  re.findall(r'<div class="doc-signature[^"]*"><pre><span></span><code>(.*?)</code>', api, re.S)]
    shown = {s.split("(", 1)[0]: s for s in signatures}
    checked, wrong = 0, []
    for name in ("generate", "train_lm", "evaluate_seq2seq"):
        for parameter in inspect.signature(getattr(charseq, name)).parameters.values():
            if isinstance(parameter.default, (int, float, str)) and not isinstance(parameter.default, bool):
                checked += 1
                if f"{parameter.name}: " not in shown[name] or f" = {parameter.default!r}" not in shown[name]:
                    wrong.append(f"{name}: {parameter.name}={parameter.default!r} not shown in {shown[name]}")
    for call in (s for s in signatures if s.startswith("__call__(")):
        if re.search(r"= [A-Z][A-Z_]+\.", call):
            wrong.append(call)
    assert checked >= 5 and not wrong, "\n".join(wrong)


def test_the_python_reference_describes_every_option_of_the_decoding_functions(site):
    """What `charseq generate` and `translate` take as options, the Python reference describes one by
    one, as Keras' reference lists a method's arguments: each parameter in its entry's list of parameters."""
    import inspect

    import charseq

    api = (site / "reference" / "python" / "index.html").read_text(encoding="utf-8")
    entries = {"charseq.heads.lm.inference.Generator.__call__": charseq.Generator.__call__,
               "charseq.heads.lm.beam.beam_search": charseq.beam_search,
               "charseq.heads.seq2seq.run.Translator.__call__": charseq.Translator.__call__}
    wrong = []
    for anchor, function in entries.items():
        start = api.find(f'id="{anchor}"')
        if start < 0:
            wrong.append(f"no entry {anchor}")
            continue
        entry = api[start:api.find('class="doc doc-heading"', api.find("</h", start))]  # up to the next entry
        described = set(re.findall(r'class="doc-section-item[^"]*">\s*(?:<td>\s*)?(?:<b>)?<code>(\w+)</code>', entry))
        wrong += [f"{anchor}: {name} is not described" for name in inspect.signature(function).parameters
                  if name != "self" and name not in described]
    assert not wrong, "\n".join(wrong)


def test_the_python_reference_names_every_parameter_of_its_functions(site):
    """Each function and method the reference documents says what each of its parameters is: named
    in its entry's text (as `name` in a sentence, or in its list of parameters), not only in the
    signature."""
    import importlib
    import inspect

    api = (site / "reference" / "python" / "index.html").read_text(encoding="utf-8")
    page = (REPO / "docs" / "reference" / "python.md").read_text(encoding="utf-8")
    entries = []
    for path, members in re.findall(r"^::: (charseq\.[\w.]+)\n(?:    options:\n      members: \[([^\]]*)\])?", page, re.M):
        module, name = path.rsplit(".", 1)
        obj = getattr(importlib.import_module(module), name)
        if inspect.isfunction(obj):
            entries.append((path, obj))
        entries += [(f"{path}.{m.strip()}", getattr(obj, m.strip())) for m in members.split(",")
                    if m.strip() and callable(getattr(obj, m.strip()))]  # a property (`size`) takes no parameters
    wrong = []
    for anchor, function in entries:
        start = api.find(f'id="{anchor}"')
        entry = api[start:api.find('class="doc doc-heading"', api.find("</h", start))]
        text = entry[entry.find("doc-contents"):]  # the description and tables, not the signature
        wrong += [f"{anchor}: {name}" for name in inspect.signature(function).parameters
                  if name != "self" and f"<code>{name}</code>" not in text]
    assert len(entries) > 25 and not wrong, "parameters not described:\n" + "\n".join(wrong)


def test_the_python_reference_links_the_names_its_docstrings_mention(site):
    """A docstring naming another documented function or class (`:class:` and `:func:` in the source)
    links to its entry: SentencePieceVocab's "same interface as CharVocab", generate's options."""
    api = (site / "reference" / "python" / "index.html").read_text(encoding="utf-8")
    for target, name in [("charseq.vocab.CharVocab", "CharVocab"),
                         ("charseq.heads.lm.inference.Generator.__call__", "Generator.__call__")]:
        assert re.search(rf'<a [^>]*href="#{re.escape(target)}"[^>]*><code>{re.escape(name)}</code></a>', api), target


def run_block_line(line: str, cwd, env) -> tuple[int, str, str]:
    """One line of a shell block: a plain `charseq ...` command runs in this process (TensorFlow is
    imported once, not per line), anything with shell syntax in bash."""
    from helpers import run_cli_in_process

    words = shlex.split(line, comments=True)
    plain = words[:1] == ["charseq"] and not any(w.startswith(("|", "&", ";", "<", ">", "2>")) or "$(" in w or "`" in w
                                                 for w in words)
    if plain:
        here = os.getcwd()
        os.chdir(cwd)
        try:
            r = run_cli_in_process(*words[1:])
        finally:
            os.chdir(here)
    else:
        r = subprocess.run(["bash", "-euo", "pipefail", "-c", line], cwd=cwd, env=env, capture_output=True,
                           text=True, timeout=600)
    return r.returncode, r.stdout, r.stderr


TRAIN_COMMAND = re.compile(r"\bcharseq (train-lm|train-classifier|train-seq2seq|classify-mnist)\b")
TINY = "--max-steps 5 --eval-every 5 --units 16 --layers 1 --embedding-dim 8 --batch-size 8 --precision float32"
IN_A_CLONE = {"getting-started.md"}  # the tour reads corpora/ as a clone holds it; the guides run from any folder


def shortened(code: str) -> str:
    """A block as the test runs it: every training a few steps of a tiny model (options of the block's
    own coming after, so they still apply where they are not a length), data set sizes cut by 50."""
    short = re.sub(r" --time-budget \S+", "", code)
    short = TRAIN_COMMAND.sub(lambda m: f"{m.group(0)} {TINY}", short)
    return re.sub(r"\b(\d{4,})\b", lambda m: str(int(m.group(1)) // 50), short)


def test_a_block_is_shortened_to_a_few_steps():
    assert shortened('charseq train-lm "$(charseq data path poems)" --out runs/p --time-budget 2  # 2 min\n'
                     "charseq make-pairs addition --n 55000 --out all.tsv\n") == \
        f'charseq train-lm {TINY} "$(charseq data path poems)" --out runs/p  # 2 min\n' \
        "charseq make-pairs addition --n 1100 --out all.tsv\n"


def test_the_tested_blocks_run_as_written(tmp_path):
    """Each block marked `<!-- tested -->` runs line by line, with a few steps of a tiny model for each
    training and data set sizes cut by 50: the tour's from a folder holding the project's corpora (a
    clone), a guide's from an empty folder, as a reader who installed charseq runs it."""
    blocks = [(page, code) for page in PAGES for _, code, tested in code_blocks(page) if tested]
    assert len(blocks) >= 4, "no tested blocks found"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "charseq"
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m charseq.cli "$@"\n')
    wrapper.chmod(0o755)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    for i, (page, code) in enumerate(blocks):
        assert TRAIN_COMMAND.search(code), f"{page.name}: a tested block trains"
        work = tmp_path / f"block{i}"
        work.mkdir()
        if page.name in IN_A_CLONE:
            (work / "corpora").mkdir()
            for corpus in (REPO / "corpora").iterdir():
                (work / "corpora" / corpus.name).write_bytes(corpus.read_bytes())
        printed = []
        for line in shortened(code).replace("\\\n", " ").splitlines():
            if not shlex.split(line, comments=True):
                continue
            status, stdout, stderr = run_block_line(line, work, env)
            assert status == 0, f"{page.relative_to(REPO)}:\n{line}\n{stdout}\n{stderr}"
            assert "Traceback" not in stderr, stderr
            printed += [out for out in stdout.splitlines() if out.strip()]
        assert printed, f"{page.name}: the block printed nothing"


def test_the_readme_shows_the_tested_blocks():
    """The README's tour and Python example are the ones the docs test (and tests/api/test_api.py runs)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    tested = [code for _, code, t in code_blocks(REPO / "docs" / "getting-started.md") if t]
    for code in tested:
        assert code in readme, f"the README's tour differs from the tested block:\n{code}"
    python = [code for language, code, _ in code_blocks(REPO / "README.md") if language == "python"]
    guide = [code for language, code, _ in code_blocks(REPO / "docs" / "getting-started.md") if language == "python"]
    assert python and python[0] == guide[0]


def test_the_python_reference_has_an_entry_for_each_vocabulary_member_the_guide_uses(site):
    """The Python guide builds a backbone from `vocab.size`, `vocab.encode(text)` and `vocab.decode(ids)`:
    each is an entry of the reference, as Keras' reference lists a layer's attributes with its methods."""
    guide = (REPO / "docs" / "guide" / "python.md").read_text(encoding="utf-8")
    api = (site / "reference" / "python" / "index.html").read_text(encoding="utf-8")
    used = set(re.findall(r"\b(?:vocab|CharVocab)\.([a-z]\w*)", guide))
    assert {"size", "encode", "decode", "build"} <= used
    assert [name for name in sorted(used) if f'id="charseq.vocab.CharVocab.{name}"' not in api] == []


def test_a_class_s_entry_names_only_methods_the_reference_shows():
    """A class's docstring pointing at one of its methods (:meth:`open`) points at an entry of the
    reference; a method it does not show is no help to a reader (RunDir's create and open)."""
    import importlib

    page = (REPO / "docs" / "reference" / "python.md").read_text(encoding="utf-8")
    wrong = []
    entries = re.findall(r"^::: (charseq\.[\w.]+)\n(?:    options:\n      members: (\[[^\]]*\]|false))?", page, re.M)
    for path, members in entries:
        module, name = path.rsplit(".", 1)
        obj = getattr(importlib.import_module(module), name)
        if not members:  # no members option: mkdocstrings shows them all
            continue
        shown = {m.strip() for m in members.strip("[]").split(",")} if members.startswith("[") else set()
        named = re.findall(r":meth:`~?(\w+)`", obj.__doc__ or "")
        wrong += [f"{path}: {method}" for method in named if method not in shown]
    assert not wrong, "docstrings naming methods the reference does not show:\n" + "\n".join(wrong)


def test_the_python_reference_lists_every_setting_of_the_train_functions(site):
    """`train_lm(corpus, out, **settings)`: each setting it takes (`seq_len`, `units`, `lr`, ...) is
    in its entry with its help and default, as Keras' reference lists every argument of `fit`."""
    import inspect

    import charseq
    from charseq.cli import main
    from charseq.settings import keywords

    api = (site / "reference" / "python" / "index.html").read_text(encoding="utf-8")
    wrong = []
    for command, name in (("train-lm", "train_lm"), ("classify-mnist", "train_mnist"),
                          ("train-classifier", "train_classifier"), ("train-seq2seq", "train_seq2seq")):
        start = re.search(rf'id="charseq\.[\w.]*\.{name}"', api).start()
        entry = api[start:api.find('class="doc doc-heading"', api.find("</h", start))]
        options = {p.name for p in main.commands[command].params}
        wrong += [f"{name}: {setting}" for setting in keywords(name, getattr(charseq, name))
                  if setting in options and setting not in inspect.signature(getattr(charseq, name)).parameters
                  and f"<code>{setting}</code>" not in entry]
    assert not wrong, "settings not listed:\n" + "\n".join(wrong)
    assert "[default: 0.1]" in api and "--" not in re.sub(r"<[^>]+>", "", api.split("Settings</strong>", 1)[1])[:3000]
