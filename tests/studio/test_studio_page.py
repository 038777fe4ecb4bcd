"""The studio's page in Debian's Chromium (headless, through Playwright), one test per behaviour a
person relies on: readable charts, stable colours, focus that survives the poll, the n-best list,
tooltips on focus and tap, unknown characters, empty states, no overflow on a phone, dark mode.
Every page asserts at its end that the browser logged no error."""

import csv
import io
import json
import re

import pytest

from helpers import QUIET, TINY_SETTINGS, start_server, stop_server, studio_in_this_process

pytest.importorskip("uvicorn", reason="the studio's extra is not installed: pip install 'charseq[studio]'")


def traces(page, metric):
    """The visible (legend) traces of a metric's chart: {run: {"color", "x", "y"}}."""
    return page.evaluate("""metric => {
        const plot = document.querySelector(`figure.chart[data-metric="${metric}"] .plot`);
        return Object.fromEntries(plot.data.filter(t => t.showlegend !== false)
            .map(t => [t.name, {color: t.line.color, x: t.x, y: t.y, raw: t.customdata}]));
    }""", metric)


def ask(page, tab, prefix, until, run=None, **fields):
    """On the `tab` page, choose `run`, set the fields #PREFIX-NAME in order (a list is chosen from, a
    box filled), press its go button and wait until the selector `until` shows."""
    page.click(f"#nav-{tab}")
    if run is not None:
        page.select_option(f"#{prefix}-run", run)
    for name, value in fields.items():
        field = page.locator(f"#{prefix}-{name}")
        if field.evaluate("e => e.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)
    page.click(f"#{prefix}-go")
    page.wait_for_selector(until, timeout=60_000)


def tick(page, *runs, on=True):
    for run in runs:
        box = page.locator(f'#runs-table input[data-run="{run}"]')
        if box.is_checked() != on:
            box.click()


def test_charts_one_per_metric_with_hover_zoom_log_smoothing_and_a_picker(server, open_page, tmp_path):
    page = open_page(server)
    tick(page, "reverse", "sentiment")
    page.wait_for_selector('figure.chart[data-metric="val_exact_match"] .plot .main-svg')
    page.wait_for_selector('figure.chart[data-metric="val_accuracy"] .plot .main-svg')
    # One chart per metric, titled with the metric's full name (never two metrics under one caption).
    titles = page.eval_on_selector_all("figure.chart", "figs => figs.map(f => [f.dataset.metric, f.querySelector('.gtitle').textContent])")
    assert all(metric == title for metric, title in titles) and len(titles) >= 5, titles
    assert set(traces(page, "val_exact_match")) == {"reverse"} and set(traces(page, "val_accuracy")) == {"sentiment"}
    assert "val_loss (nats)" in page.text_content('figure.chart[data-metric="val_loss"] .g-ytitle')

    # Hover: the exact value of the point under the pointer.
    metrics = json.loads(page.evaluate("fetch('/api/runs/poems/metrics').then(r => r.text())"))["metrics"]
    tick(page, "poems")
    page.wait_for_function("document.querySelector('figure.chart[data-metric=\"val_loss\"] .plot').data.some(t => t.name === 'poems')")
    plot = page.locator('figure.chart[data-metric="val_loss"] .plot')
    plot.scroll_into_view_if_needed()
    point = page.locator('figure.chart[data-metric="val_loss"] .scatterlayer .trace:last-child .point').last
    point.hover(force=True)
    page.wait_for_selector('figure.chart[data-metric="val_loss"] .hovertext')
    hover = page.text_content('figure.chart[data-metric="val_loss"] .hoverlayer')
    last = [r for r in metrics if "val_loss" in r][-1]
    assert "poems" in hover and f"{last['val_loss']:.6g}".rstrip("0").rstrip(".") in hover, (hover, last)

    # Zoom: a drag across the plot narrows the x range; a double-click restores it.
    box = page.locator('figure.chart[data-metric="val_loss"] .nsewdrag').bounding_box()
    full = page.evaluate("() => document.querySelector('figure.chart[data-metric=\"val_loss\"] .plot')._fullLayout.xaxis.range.slice()")
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.5)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5, steps=8)
    page.mouse.up()
    x_range = "document.querySelector('figure.chart[data-metric=\"val_loss\"] .plot')._fullLayout.xaxis.range"
    # The chart redraws when the browser gets to it (a busy machine takes a moment).
    page.wait_for_function(f"full => {{ const r = {x_range}; return r[1] - r[0] < 0.6 * (full[1] - full[0]); }}", arg=full,
                           timeout=30_000)
    zoomed = page.evaluate(f"() => {x_range}.slice()")
    assert zoomed[1] - zoomed[0] < 0.6 * (full[1] - full[0]), (full, zoomed)
    # The zoom survives the page's polls (every 3 s), which draw the charts again.
    for _ in range(2):
        with page.expect_response(lambda response: response.url.endswith("/api/runs")):
            pass
    assert page.evaluate(f"() => {x_range}.slice()") == zoomed

    # Log y, smoothing, x as training time.
    page.check("#chart-log")
    page.wait_for_function("document.querySelector('figure.chart[data-metric=\"val_loss\"] .plot')._fullLayout.yaxis.type === 'log'")
    page.locator("#chart-smooth").fill("0.6")
    page.wait_for_function("document.querySelector('figure.chart[data-metric=\"val_loss\"] .plot').data.length > 3")
    smoothed = traces(page, "val_loss")["poems"]
    assert smoothed["raw"] == [r["val_loss"] for r in metrics if "val_loss" in r]
    assert smoothed["y"] != smoothed["raw"] and smoothed["y"][0] == pytest.approx(smoothed["raw"][0])
    page.select_option("#chart-x", "relative")
    page.wait_for_function("document.querySelector('figure.chart[data-metric=\"val_loss\"] .g-xtitle').textContent.startsWith('training time')")
    assert traces(page, "val_loss")["poems"]["x"] == [r["elapsed_s"] for r in metrics if "val_loss" in r]
    page.select_option("#chart-x", "wall")
    page.wait_for_function("document.querySelector('figure.chart[data-metric=\"val_loss\"] .plot')._fullLayout.xaxis.type === 'date'")

    # The metric picker hides and shows a chart; the settings live in the URL, so a reload keeps them.
    page.click("#chart-picker summary")
    page.uncheck('#chart-metrics input[value="lr"]')
    page.wait_for_selector('figure.chart[data-metric="lr"]', state="detached")
    assert "hide=lr" in page.evaluate("location.hash") and "log=1" in page.evaluate("location.hash")
    page.reload()
    page.wait_for_selector('figure.chart[data-metric="val_loss"] .plot .main-svg')
    assert page.is_checked("#chart-log") and page.input_value("#chart-x") == "wall"
    assert page.locator('figure.chart[data-metric="lr"]').count() == 0
    assert page.is_checked('#runs-table input[data-run="poems"]') and page.is_checked('#runs-table input[data-run="reverse"]')

    # Export: the data as CSV and the chart as PNG, from the chart's toolbar.
    chart = page.locator('figure.chart[data-metric="val_loss"]')
    chart.hover()
    with page.expect_download() as download:
        chart.locator('.modebar-btn[data-title="Download data as CSV"]').click()
    rows = list(csv.reader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
    assert rows[0][0] == "series" and rows[0][2].startswith("val_loss")
    assert [float(r[2]) for r in rows[1:] if r[0] == "poems"] == [r["val_loss"] for r in metrics if "val_loss" in r]
    with page.expect_download(timeout=30_000) as download:
        chart.locator('.modebar-btn[data-title="Download plot as a PNG"], .modebar-btn[data-title="Download plot as a png"]').first.click()
    assert open(download.value.path(), "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_unticking_a_run_keeps_the_others_colours_and_swatches(server, open_page):
    page = open_page(server)
    tick(page, "poems", "grid/lr=0.003", "grid/lr=0.01")
    page.wait_for_function("document.querySelector('figure.chart[data-metric=\"val_loss\"] .plot')?.data?.length === 3")
    before = {name: t["color"] for name, t in traces(page, "val_loss").items()}
    # Comparing them: the settings that differ as columns (the grid's learning rate among them), and the
    # best score over those settings as parallel coordinates.
    columns = page.eval_on_selector_all("#runs-diff table.compare tr:first-child th", "ths => ths.map(t => t.textContent)")
    assert any(c.split(".")[-1] == "lr" for c in columns), columns
    assert not [c for c in columns if c == "sizing" or c.startswith("data_files")], columns  # follow from the rest
    page.wait_for_selector("#runs-diff figure.axes .parcoords")
    swatches = page.eval_on_selector_all("#runs-table tbody tr", "rows => Object.fromEntries(rows.map(r => [r.querySelector('input').dataset.run, getComputedStyle(r.querySelector('.swatch')).backgroundColor]))")
    assert len(set(before.values())) == 3 and len(set(swatches.values())) == len(swatches)  # one colour per run
    tick(page, "grid/lr=0.003", on=False)
    page.wait_for_function("document.querySelector('figure.chart[data-metric=\"val_loss\"] .plot').data.length === 2")
    after = {name: t["color"] for name, t in traces(page, "val_loss").items()}
    assert after == {k: v for k, v in before.items() if k != "grid/lr=0.003"}
    # The swatch in the table is the curve's colour.
    color = page.evaluate("c => { const d = document.createElement('div'); d.style.color = c; document.body.append(d); const x = getComputedStyle(d).color; d.remove(); return x; }", after["poems"])
    assert swatches["poems"] == color


def next_poll(page):
    """Until the page has polled the run list again, moving its clock on (a second at a time) instead
    of waiting the poll's seconds."""
    with page.expect_response("**/api/runs") as polled:
        for _ in range(30):
            if polled.is_done():
                break
            page.clock.fast_forward(1000)


def test_keyboard_focus_survives_the_poll(server, open_page):
    page = open_page(server, clock=True)
    box = page.locator('#runs-table input[data-run="reverse"]')
    box.focus()
    page.keyboard.press("Space")  # ticked from the keyboard
    for _ in range(2):  # two polls of the run list
        next_poll(page)
    assert page.evaluate("document.activeElement.dataset.run") == "reverse" and box.is_checked()
    page.keyboard.press("Shift+Tab")  # the focus is still in the table: keyboard navigation goes on
    assert page.evaluate("document.activeElement.closest('#runs-table') !== null")
    # Sorting from the keyboard moves rows without losing the focused checkbox.
    page.locator('#runs-table th[data-sort="steps"]').focus()
    page.keyboard.press("Enter")
    order = page.eval_on_selector_all("#runs-table tbody input", "xs => xs.map(x => x.dataset.run)")
    steps = {r["name"]: r["steps"] for r in json.loads(page.evaluate("fetch('/api/runs').then(r => r.text())"))["runs"]}
    assert [steps[n] for n in order] == sorted(steps[n] for n in order)
    # The sort is in the link, as the ticked runs are: a reload (or the link, shared) opens it sorted.
    page.keyboard.press("Enter")  # again: descending
    assert "sort=-steps" in page.url and page.get_attribute('th[data-sort="steps"]', "aria-sort") == "descending"
    page.reload()
    page.wait_for_selector("#runs-table tbody tr")
    order = page.eval_on_selector_all("#runs-table tbody input", "xs => xs.map(x => x.dataset.run)")
    assert [steps[n] for n in order] == sorted((steps[n] for n in order), reverse=True)


def test_the_n_best_list_shows_and_rows_are_reachable_by_keyboard(server, open_page):
    page = open_page(server + "#generate")
    page.select_option("#lm-run", "poems")
    page.fill("#lm-prompt", "The ")
    page.fill("#lm-length", "12")
    page.fill("#lm-beam", "8")
    page.fill("#lm-nbest", "3")
    page.focus("#lm-prompt")
    page.keyboard.press("Control+Enter")  # Ctrl+Enter generates
    page.wait_for_selector("#lm-status:has-text('done')", timeout=60_000)
    items = page.locator("#lm-hyps li")
    assert items.count() == 3 and items.nth(0).is_visible()
    assert all(items.nth(i).inner_text().split(None, 1)[1].startswith("The ") for i in range(3))
    assert page.locator("#lm-nbest").input_value() == "3"  # the number field keeps its value
    items.nth(0).focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement === document.querySelectorAll('#lm-hyps li')[1]")
    # The prompt and the settings are in the URL: a reload (or the link, shared) opens the same playground.
    page.reload()
    page.wait_for_selector("body[data-ready]")
    assert page.input_value("#lm-prompt") == "The " and page.input_value("#lm-beam") == "8"
    assert page.input_value("#lm-nbest") == "3" and page.input_value("#lm-run") == "poems"
    # n-best is at most the beam's width: the field stops there, and a larger number is said, not cut silently.
    assert page.get_attribute("#lm-nbest", "max") == "8"
    page.fill("#lm-beam", "2")
    assert page.get_attribute("#lm-nbest", "max") == "2"
    page.click("#lm-go")
    page.wait_for_selector("#lm-status:has-text('done')", timeout=60_000)
    assert page.locator("#lm-hyps li").count() == 2
    assert "n-best 3 is more than the beam's 2 hypotheses: 2 shown" in page.inner_text("#lm-status")
    page.fill("#lm-beam", "1")  # sampling has one text: n-best does not apply
    assert page.is_disabled("#lm-nbest") and not page.is_disabled("#lm-temperature")
    page.click("#nav-translate")
    page.select_option("#tr-run", "reverse")
    page.fill("#tr-beam", "2")
    page.fill("#tr-nbest", "5")
    page.fill("#tr-source", "abc")
    page.click("#tr-go")
    page.wait_for_selector("#tr-status:has-text('hypotheses')", timeout=60_000)
    assert "n-best 5 is more than the beam's 2 hypotheses: 2 shown" in page.inner_text("#tr-status")


def test_generate_sends_only_the_settings_its_decoding_uses(server, open_page):
    """Beam search samples nothing and greedy decoding draws nothing: the page greys out the settings
    they would ignore and never sends them, which the API, as the command line, refuses."""
    def sent(page):
        with page.expect_request("**/api/generate") as request:
            page.click("#lm-go")
        page.wait_for_selector("#lm-status:has-text('done')", timeout=60_000)
        return request.value.post_data_json

    page = open_page(server + "#generate?run=poems&prompt=The%20&length=4&temperature=0.5&seed=3&samples=2")
    assert set(sent(page)) >= {"temperature", "seed", "samples", "top_k", "top_p"}
    page.fill("#lm-beam", "3")
    assert page.is_disabled("#lm-temperature") and page.is_disabled("#lm-greedy") and page.is_disabled("#lm-samples")
    body = sent(page)
    assert body["beam"] == 3 and not {"temperature", "top_k", "top_p", "seed", "samples", "greedy"} & set(body), body
    page.fill("#lm-beam", "1")
    page.check("#lm-greedy")
    assert page.is_disabled("#lm-seed") and page.is_enabled("#lm-length")
    body = sent(page)
    assert body["greedy"] is True and not {"temperature", "top_k", "top_p", "seed", "samples"} & set(body), body
    page.reload()  # the greyed-out settings are greyed out again from the link
    page.wait_for_selector("body[data-ready]")
    assert page.is_checked("#lm-greedy") and page.is_disabled("#lm-temperature")


def test_several_samples_show_one_under_another_each_shaded(server, open_page):
    page = open_page(server + "#generate")
    ask(page, "generate", "lm", "#lm-status:has-text('done')", run="poems", prompt="The ", length="15", seed="4",
        samples="3")
    samples = page.locator("#lm-output > .sample")
    assert samples.count() == 3 and "3 samples of 15 characters" in page.inner_text("#lm-status")
    texts = [samples.nth(i).inner_text() for i in range(3)]
    assert all(t.startswith("The ") for t in texts) and len(set(texts)) > 1, texts
    assert all(samples.nth(i).locator(".tok[data-tip]").count() == 15 for i in range(3))  # 15 characters each


def test_tooltips_on_keyboard_focus_and_on_tap(server, open_page):
    page = open_page(server + "#generate", touch=True)
    ask(page, "generate", "lm", "#lm-status:has-text('done')", run="poems", prompt="The ", length="20", seed="3")
    first = page.locator("#lm-output > .tok").first
    first.focus()
    tip = page.text_content("#tooltip")
    assert page.is_visible("#tooltip") and tip == first.get_attribute("data-tip")
    assert "surprise" in tip.splitlines()[0] and "top 5" in tip  # the chosen character first, then the top 5
    page.keyboard.press("ArrowRight")  # arrow keys walk the characters; the tooltip follows
    assert page.text_content("#tooltip") == page.locator("#lm-output > .tok").nth(1).get_attribute("data-tip")
    page.keyboard.press("Escape")
    assert not page.is_visible("#tooltip")
    # Shading by surprise has a colour scale; a likely character is paler than an unlikely one.
    assert "surprise" in page.inner_text("#lm-scale")
    page.locator("#lm-output > .tok").nth(5).tap()
    assert page.is_visible("#tooltip") and "top 5" in page.inner_text("#tooltip")

    page.click("#nav-translate")
    page.select_option("#tr-run", "reverse")
    page.fill("#tr-source", "abcd")
    page.press("#tr-source", "Enter")
    page.wait_for_selector("table.heatmap td")
    headers = page.eval_on_selector_all("table.heatmap tr:first-child th", "ths => ths.map(t => t.textContent)")
    assert headers[1:] == ["a", "b", "c", "d"]
    # A space (this model has none in its vocabulary) would show in the heat-map's headers as ␣.
    assert page.evaluate("import('/static/shade.js').then(m => m.visibleLabel(' a\\n'))") == "␣a↵\n"
    page.locator("table.heatmap td").first.tap()
    assert page.is_visible("#tooltip") and "←" in page.inner_text("#tooltip")
    page.locator("#tr-hyps tr:nth-child(3)").focus()  # hypotheses are chosen from the keyboard too
    page.keyboard.press("Enter")
    page.wait_for_selector("#tr-hyps tr:nth-child(3).chosen")


def test_unknown_characters_are_named_and_marked_on_every_page(server, open_page):
    page = open_page(server + "#classify")
    ask(page, "classify", "cl", "#cl-status:has-text('vocabulary')", run="sentiment", text="a good ☃ film")
    assert '"☃"' in page.inner_text("#cl-status")
    assert page.inner_text("#cl-saliency .tok.unknown") == "☃" and "�" not in page.inner_text("#cl-saliency")
    # The saliency tip says what occlusion did in plain words; the colours have a scale.
    page.locator("#cl-saliency .tok").nth(2).focus()
    tip = page.inner_text("#tooltip")
    assert ("supports" in tip or "speaks against" in tip or "no effect" in tip) and "-" not in tip.split("(")[-1]
    assert "supports" in page.inner_text("#cl-scale") and "against" in page.inner_text("#cl-scale")
    # Characters past the run's --max-len (24) are never read: greyed, and said, not "no effect".
    ask(page, "classify", "cl", "#cl-status:has-text('max-len')", text="a good film, really so good")
    assert page.locator("#cl-saliency .tok.unread").count() == 3 and "last 3 characters" in page.inner_text("#cl-status")
    page.locator("#cl-saliency .tok.unread").first.focus()
    assert "not read" in page.inner_text("#tooltip")

    ask(page, "inside", "in", "#in-status:has-text('vocabulary')", run="poems", text="The ☃ river")
    assert page.inner_text("#in-output .tok.unknown") == "☃" and '"☃"' in page.inner_text("#in-status")

    # left out: struck through in the prompt, and said
    ask(page, "generate", "lm", "#lm-status:has-text('done')", run="poems", prompt="The ☃", length="5", unknown="skip")
    assert page.inner_text("#lm-output .prompt .tok.unknown.skipped") == "☃" and "left out" in page.inner_text("#lm-status")
    page.select_option("#lm-unknown", "error")  # refused, naming the character and the remedy
    page.click("#lm-go")
    page.wait_for_selector("#lm-status.error")
    assert "☃" in page.inner_text("#lm-status") and "unknown" in page.inner_text("#lm-status")
    assert "set unknown to skip" in page.inner_text("#lm-status")  # the page's control, not the API's field

    ask(page, "translate", "tr", "#tr-status.error", run="reverse", source="ab☃")
    assert "☃" in page.inner_text("#tr-status")
    # read as unknown from the page's own menu, as translate --unknown unk: shown as typed, marked and said
    ask(page, "translate", "tr", "table.heatmap th.unknown", unknown="unk")
    assert page.inner_text("table.heatmap th.unknown") == "☃" and "�" not in page.inner_text("table.heatmap")
    assert '"☃"' in page.inner_text("#tr-status") and "read as unknown" in page.inner_text("#tr-status")
    assert "unknown=unk" in page.evaluate("location.hash")  # a link keeps the choice
    page.problems[:] = [p for p in page.problems if "status of 400" not in p]  # the two refusals above


def test_the_arrow_keys_step_temperature_and_top_p_from_their_values(server, open_page):
    """A number box steps from its minimum: with a minimum off the step's grid, temperature 0.8 went
    up to 0.85 and top-p 1 down to 0.96."""
    page = open_page(server + "#generate")
    page.focus("#lm-temperature")
    page.keyboard.press("ArrowUp")
    assert page.input_value("#lm-temperature") == "0.9"
    page.focus("#lm-topp")
    page.keyboard.press("ArrowDown")
    assert page.input_value("#lm-topp") == "0.95"
    page.keyboard.press("ArrowUp")
    assert page.input_value("#lm-topp") == "1"


def test_a_subword_model_s_unknown_prompt_characters_are_marked_too(tmp_path, corpus_file, open_page):
    """A SentencePiece model reads the prompt as pieces of several characters: its unknown characters
    were neither marked nor named, since the page matched them by token."""
    from charseq.heads.lm.run import train_lm

    train_lm(corpus_file, tmp_path / "pieces", tokenizer="sentencepiece", vocab_size=60, max_steps=2, **QUIET,
             **TINY_SETTINGS)
    proc, url, _ = start_server(tmp_path / "pieces")
    try:
        page = open_page(url + "#generate")
        ask(page, "generate", "lm", "#lm-status:has-text('done')", prompt="The ☃ river ☃", length="5", unknown="skip")
        marked = page.locator("#lm-output .prompt .tok.unknown.skipped")
        assert marked.all_inner_texts() == ["☃", "☃"], page.inner_text("#lm-output")
        assert "2 prompt characters not in the vocabulary left out" in page.inner_text("#lm-status")
        assert page.inner_text("#lm-output .prompt").startswith("The ☃ river ☃")
        # Look inside names them too, though the model reads "☃ Zé" as pieces, each run of them one <unk>.
        ask(page, "inside", "in", "#in-status:has-text('vocabulary')", text="The ☃ river Zé")
        shown = page.inner_text("#in-status").replace("\u2066", "").replace("\u2069", "")  # each kept left to right
        assert shown.endswith('(marked): "☃" "Z" "é"'), shown
    finally:
        stop_server(proc)


def test_look_inside_draws_the_unit_it_says_and_forgets_another_runs_view(server, open_page):
    page = open_page(server + "#inside")
    ask(page, "inside", "in", "#in-units li button", run="poems", text="The river runs to the sea.")
    assert "only" in page.inner_text("#in-warning")  # few characters: the correlations come with a warning
    units = page.eval_on_selector_all("#in-units li button", "bs => bs.map(b => b.textContent)")
    assert len(units) == len(set(units))  # each unit listed once
    page.fill("#in-unit", "999")
    page.press("#in-unit", "Tab")
    assert page.input_value("#in-unit") == "31"  # 32 units: the field says the unit drawn
    assert "unit 31" in page.inner_text("#in-scale")
    page.select_option("#in-run", "grid/lr=0.01")
    assert page.inner_text("#in-output") == "" and page.locator("#in-units li").count() == 0


def test_a_page_with_no_run_of_its_kind_says_what_to_train(studio_dir, open_page):
    with studio_in_this_process(studio_dir / "sentiment") as url:  # a classifier only
        page = open_page(url)
        for tab, prefix, command in [("generate", "lm", "train-lm"), ("inside", "in", "train-lm"),
                                     ("translate", "tr", "train-seq2seq")]:
            page.click(f"#nav-{tab}")
            page.wait_for_selector(f"#{prefix}-empty")  # visible
            assert command in page.inner_text(f"#{prefix}-empty")
            assert page.is_disabled(f"#{prefix}-go") and page.is_disabled(f"#{prefix}-run")
        page.click("#nav-classify")
        page.wait_for_selector("#cl-go")
        assert not page.is_visible("#cl-empty") and page.is_enabled("#cl-go")


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_no_horizontal_overflow_on_a_phone(server, open_page, dark, shots_dir):
    page = open_page(server, width=420, dark=dark)
    page.wait_for_selector("figure.chart .main-svg")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert (background == "rgb(20, 23, 29)") == dark  # dark mode follows the browser
    width = lambda: page.evaluate("document.documentElement.scrollWidth")  # noqa: E731
    assert width() <= 420, "runs"
    ask(page, "generate", "lm", "#lm-status:has-text('done')", run="poems", length="80")
    assert width() <= 420, "generate"
    ask(page, "inside", "in", "#in-units li")
    assert width() <= 420, "inside"
    ask(page, "classify", "cl", "#cl-probs .bar", run="sentiment")
    assert width() <= 420, "classify (text)"
    page.select_option("#cl-run", "digits")
    assert width() <= 420, "classify (image)"
    # A blank drawing canvas says what to do with it.
    assert page.evaluate("""() => { const d = document.getElementById('cl-canvas').getContext('2d').getImageData(0, 0, 280, 280).data;
                                    let dark = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 200) dark++; return dark; }""") > 50
    ask(page, "translate", "tr", "table.heatmap td", source="abcdefghijkl")
    assert width() <= 420, "translate"
    page.screenshot(path=shots_dir / f"translate-420-{'dark' if dark else 'light'}.png", full_page=True)


def test_a_charts_title_is_not_under_its_toolbar_on_a_phone(server, open_page):
    """A touch screen always shows a chart's toolbar, and a phone's chart is too narrow for a long
    title beside it: the title is below it."""
    page = open_page(server + "#runs?runs=reverse", width=390, touch=True)
    page.wait_for_selector('figure.chart[data-metric="val_char_error_rate"] .modebar')
    overlaps = page.eval_on_selector_all("figure.chart", """figs => figs.map(f => {
        const t = f.querySelector('.gtitle').getBoundingClientRect(), m = f.querySelector('.modebar').getBoundingClientRect();
        return t.right > m.left && t.left < m.right && t.bottom > m.top && t.top < m.bottom; })""")
    assert overlaps and not any(overlaps), overlaps


@pytest.fixture(scope="module")
def shots_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("page-shots")


def test_a_running_runs_status_progress_and_eta_update_in_place(server, open_page):
    """The run list's status fields (status, progress, eta_seconds) as the page shows them. The
    served runs have all finished, so the server's answer is taken as it is and one run is
    reported as still running, at a progress that grows with each poll."""
    polls = []

    def running(route):
        response = route.fetch()
        body = response.json()
        polls.append(len(polls))
        for run in body["runs"]:
            if run["name"] == "poems":
                run.update(status="running", progress=min(1.0, 0.25 + 0.25 * len(polls)), eta_seconds=90)
        route.fulfill(response=response, json=body)

    page = open_page(server, clock=True)
    page.route("**/api/runs", running)
    row = page.locator('#runs-table tbody tr:has(input[data-run="poems"])')
    row.locator("input").focus()
    next_poll(page)
    page.wait_for_selector('#runs-table tr:has(input[data-run="poems"]) td.status progress')
    first = row.locator("progress").evaluate("p => p.value")
    assert "running" in row.locator("td.status").inner_text() and "2 min left" in row.locator("td.status").inner_text()
    next_poll(page)
    page.wait_for_function(f"document.querySelector('#runs-table tr:has(input[data-run=\"poems\"]) progress').value > {first}")
    assert page.evaluate("document.activeElement.dataset.run") == "poems"  # the row was updated, not rebuilt
    # A poll still in the handler when the route goes would fail at its fulfill, inside the next test's call.
    page.unroute_all(behavior="ignoreErrors")


def test_an_answer_that_comes_after_a_later_ones_is_not_shown(server, open_page):
    """Translate twice quickly (or follow a link, then translate): the second source's hypotheses stay
    shown when the first request's answer comes last."""
    page = open_page(server + "#translate?run=reverse")
    held = []
    page.route("**/api/translate", lambda route: route.continue_() if held else held.append(route))
    page.fill("#tr-source", "abc")
    page.click("#tr-go")
    while not held:
        page.wait_for_timeout(50)
    page.fill("#tr-source", "cba")
    page.click("#tr-go")
    first_column = "document.querySelector('#tr-heatmap th:nth-child(2)')?.textContent"
    page.wait_for_function(f"{first_column} === 'c'", timeout=60_000)
    with page.expect_event("requestfinished"):
        held[0].continue_()
    page.evaluate("() => new Promise(done => setTimeout(done, 200))")  # the page has read the late answer
    assert page.evaluate(first_column) == "c" and "hypotheses" in page.inner_text("#tr-status")


def test_translate_shows_empty_and_spaced_outputs_and_offers_attention_only_where_there_is_some(server, open_page):
    """An empty output was an empty cell, an output ending in a space looked like one without; a model
    without attention was still offered the choice of a hypothesis "to see its attention"."""
    def no_attention(route):
        hypotheses = [{"text": "", "log_prob": -1.0, "score": -1.0}, {"text": "ab ", "log_prob": -2.0, "score": -1.5}]
        route.fulfill(json={"hypotheses": hypotheses, "source_tokens": list("abc"), "unknown_at": [],
                            "output_tokens": ["</s>"], "attention": None, "chosen": 0, "cut_off": False})

    page = open_page(server + "#translate?run=reverse")
    page.route("**/api/translate", no_attention)
    ask(page, "translate", "tr", "#tr-hyps tr.chosen", source="abc")
    assert page.locator("#tr-hyps td.out").all_inner_texts() == ["(empty)", "ab␣"]
    assert "attention" not in page.inner_text("#tr-status") and "no attention" in page.inner_text("#tr-heatmap")
    page.unroute("**/api/translate")


def test_a_refused_source_leaves_no_earlier_sources_hypotheses_on_show(server, open_page):
    """A source refused (a character the model never saw) kept the hypotheses and heat-map of the one
    before under its error, as if they were its answer; the attention heading showed over nothing."""
    page = open_page(server + "#translate?run=reverse")
    assert not page.is_visible("#tr-attention-title")
    ask(page, "translate", "tr", "table.heatmap td", source="abc")
    assert page.is_visible("#tr-attention-title") and page.locator("#tr-hyps tr.chosen").count() == 1
    ask(page, "translate", "tr", "#tr-status.error", source="ab☃")
    assert page.locator("#tr-hyps tr").count() == 0 and page.locator("#tr-heatmap table").count() == 0
    assert not page.is_visible("#tr-attention-title") and "☃" in page.inner_text("#tr-status")
    page.problems[:] = [p for p in page.problems if "status of 400" not in p]  # the refusal above


def test_examples_from_the_validation_data_are_one_click(server, open_page):
    page = open_page(server + "#generate?run=poems")
    first = page.locator("#lm-examples button.example").first
    first.click()
    assert page.input_value("#lm-prompt") == first.get_attribute("title") != ""

    page = open_page(server + "#translate?run=reverse")
    first = page.locator("#tr-examples button.example").first
    first.click()
    page.wait_for_selector("#tr-hyps tr.chosen")
    source, target = first.get_attribute("title").split(" → ")
    assert page.input_value("#tr-source") == source and target == source[::-1]  # the task reverses strings

    page = open_page(server + "#classify?run=sentiment")
    first = page.locator("#cl-examples button.example").first
    first.click()
    page.wait_for_selector("#cl-status:has-text('%')")
    assert page.input_value("#cl-text") == first.get_attribute("title")

    page = open_page(server + "#classify?run=digits")
    page.locator("#cl-examples button.example canvas").first.click()  # an image, drawn onto the canvas
    page.wait_for_selector("#cl-img-status:has-text('%')")
    ink = page.evaluate("""() => { const d = document.getElementById('cl-canvas').getContext('2d').getImageData(0, 0, 280, 280).data;
        let dark = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 128) dark++; return dark; }""")
    assert ink > 280 * 280 // 20


def test_classifier_shows_its_confusion_matrix_and_mistakes(server, open_page):
    report = json.loads(open_page(server).evaluate("fetch('/api/confusion?run=sentiment').then(r => r.text())"))
    page = open_page(server + "#classify?run=sentiment")
    page.wait_for_selector("#cl-val-status:has-text('accuracy')")
    page.wait_for_selector("#cl-confusion .main-svg")
    shown = page.evaluate("document.querySelector('#cl-confusion').data[0].customdata")
    assert shown == report["confusion_matrix"]
    assert page.locator("#cl-wrong button").count() == len(report["misclassified"])
    assert f"{report['misclassified_count']} misclassified" in page.inner_text("#cl-val-status")


def test_tokens_seen_as_the_x_axis(server, open_page, tmp_path):
    page = open_page(server + "#runs?runs=poems")
    page.wait_for_selector("figure.chart[data-metric='val_loss'] .main-svg")
    page.select_option("#chart-x", "tokens")
    page.wait_for_function("document.querySelector(\"figure.chart[data-metric='val_loss'] .plot\").layout.xaxis.title.text"
                           " === 'tokens seen'")
    metrics = json.loads(page.evaluate("fetch('/api/runs/poems/metrics').then(r => r.text())"))["metrics"]
    shown = traces(page, "val_loss")["poems"]
    assert shown["x"] == [r["tokens_seen"] for r in metrics if "val_loss" in r]

    import shutil

    from helpers import REPO
    old = shutil.copytree(REPO / "tests" / "fixtures" / "runs-2026-12-01" / "lm", tmp_path / "old")  # no tokens_seen
    with studio_in_this_process(old) as url:
        page = open_page(url + "#runs?x=tokens")
        page.wait_for_selector("figure.chart .main-svg")
        assert page.evaluate("document.querySelector('#chart-x option[value=tokens]').disabled")
        assert "drawn against step instead" in page.inner_text("#charts-note")
        assert traces(page, "val_loss")["old"]["x"] == [r["step"] for r in read_metrics_of(old) if "val_loss" in r]


def read_metrics_of(run):
    with open(run / "metrics.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_a_grid_over_two_settings_is_a_heat_map(open_page, tmp_path, corpus_file):
    from charseq.grid import run_grid

    settings = dict(layers=2, embedding_dim=16, batch_size=8, seq_len=32, eval_every=10, sample_length=0,
                    precision="float32", log=lambda s: None)
    run_grid("train-lm", tmp_path / "grid", {"lr": [3e-3, 1e-2], "units": [8, 16]}, corpus_file, max_steps=2, **settings)
    with studio_in_this_process(tmp_path) as url:
        page = open_page(url + "#runs")
        page.check("#runs-all")
        page.wait_for_selector("#runs-diff .grid-heatmap .main-svg")
        trace = page.evaluate("(() => { const t = document.querySelector('#runs-diff .grid-heatmap').data[0]; return {x: t.x, y: t.y, z: t.z, type: t.type}; })()")
        runs = json.loads(page.evaluate("fetch('/api/runs').then(r => r.text())"))["runs"]
        assert trace["type"] == "heatmap" and sorted(trace["x"] + trace["y"]) == sorted(["0.003", "0.01", "8", "16"])
        assert sorted(v for row in trace["z"] for v in row) == sorted(r["best"]["value"] for r in runs)


def test_comparing_runs_while_one_trains_keeps_the_pages_webgl_contexts(server, open_page):
    """Parallel coordinates draw with WebGL, and a page has few WebGL contexts (Chromium: 16). They are
    drawn again whenever a ticked run's best score moves, at every poll while it trains; each drawing
    must free the last one's contexts, or Chromium drops the oldest and warns."""
    polls = []

    def improving(route):  # poems, ticked with the grid's two runs, improves at every poll
        response = route.fetch()
        body = response.json()
        polls.append(len(polls))
        for run in body["runs"]:
            if run["name"] == "poems":
                run["best"]["value"] -= 0.01 * len(polls)
        route.fulfill(response=response, json=body)

    page = open_page(server + "#runs?runs=poems&runs=grid/lr=0.003&runs=grid/lr=0.01", clock=True)
    warnings = []
    page.on("console", lambda m: "WebGL" in m.text and "context" in m.text and warnings.append(m.text))
    page.wait_for_selector("#runs-diff figure.axes .js-plotly-plot")
    page.route("**/api/runs", improving)
    for _ in range(10):
        next_poll(page)
        page.wait_for_timeout(100)  # the page draws what the poll brought
    page.wait_for_selector("#runs-diff figure.axes .js-plotly-plot")
    page.unroute_all(behavior="ignoreErrors")  # as above: a poll in flight must not fail the next test
    assert len(polls) >= 10 and not warnings, warnings


def test_a_grid_served_by_itself_opens_with_its_runs_ticked(studio_dir, open_page):
    """`charseq serve runs/` opens with the first grid's runs ticked; so does `charseq serve runs/grid`,
    where the grid's runs are the folder's own and no name holds the grid's folder."""
    with studio_in_this_process(studio_dir / "grid") as url:
        page = open_page(url)
        runs = json.loads(page.evaluate("fetch('/api/runs').then(r => r.text())"))["runs"]
        assert {r["name"]: r["grid"] for r in runs} == {"lr=0.003": True, "lr=0.01": True}
        page.wait_for_selector("#runs-diff figure, #runs-diff h3")
        ticked = page.eval_on_selector_all("#runs-table input[data-run]:checked", "boxes => boxes.map(b => b.dataset.run)")
        assert sorted(ticked) == ["lr=0.003", "lr=0.01"]
    with studio_in_this_process(studio_dir / "poems", studio_dir / "sentiment") as url:  # runs of no grid
        page = open_page(url)
        assert page.eval_on_selector_all("#runs-table input[data-run]:checked", "boxes => boxes.map(b => b.dataset.run)") == ["poems"]


def test_a_run_with_no_evaluation_yet_is_not_ticked_first_and_says_why_it_has_no_curves(studio_dir, open_page,
                                                                                         tmp_path):
    """A folder whose first run was killed before its first evaluation (or cannot be read) opens with
    a run that has curves ticked; ticking the bare one says it has none yet instead of drawing nothing."""
    import shutil

    served = tmp_path / "served"
    shutil.copytree(studio_dir / "poems", served / "a-killed")
    (served / "a-killed" / "metrics.jsonl").unlink()
    shutil.copytree(studio_dir / "poems", served / "b-damaged")
    (served / "b-damaged" / "config.json").write_text("{", encoding="utf-8")
    shutil.copytree(studio_dir / "poems", served / "c-poems")
    with studio_in_this_process(served) as url:
        page = open_page(url)
        page.wait_for_selector("figure.chart[data-metric='val_loss'] .main-svg")
        ticked = page.eval_on_selector_all("#runs-table input[data-run]:checked",
                                           "boxes => boxes.map(b => b.dataset.run)")
        assert ticked == ["c-poems"]
        assert "unreadable" in page.inner_text("#runs-table tr:has(input[data-run='b-damaged']) td.status")
        page.check("#runs-table input[data-run='a-killed']")
        page.wait_for_function("document.getElementById('charts-note').textContent.includes('a-killed')")
        assert page.is_visible("#charts-note")
        assert "No evaluation recorded yet, so no curves: a-killed" in page.inner_text("#charts-note")
        page.uncheck("#runs-table input[data-run='c-poems']")
        page.wait_for_selector("figure.chart", state="detached")
        assert "a-killed" in page.inner_text("#charts-note")


def test_the_enter_that_confirms_an_input_methods_word_does_not_submit(server, open_page):
    """Typing Chinese with pinyin, Enter confirms the word in the input method; Translate (Enter) and
    Generate (Ctrl+Enter) wait for an Enter of the page's own."""
    page = open_page(server + "#translate?run=reverse")
    sent = []
    page.on("request", lambda r: r.url.endswith(("/api/translate", "/api/generate")) and sent.append(r.url))
    composing = """([id, ctrl]) => document.getElementById(id).dispatchEvent(new KeyboardEvent("keydown",
        {key: "Enter", code: "Enter", ctrlKey: ctrl, isComposing: true, bubbles: true, cancelable: true}))"""
    page.fill("#tr-source", "abcd")
    page.evaluate(composing, ["tr-source", False])
    page.wait_for_timeout(300)
    assert sent == [] and page.inner_text("#tr-status") == ""
    page.press("#tr-source", "Enter")
    page.wait_for_selector("table.heatmap td")
    assert len(sent) == 1

    page.click("#nav-generate")
    page.fill("#lm-length", "3")
    page.fill("#lm-prompt", "The")
    page.evaluate(composing, ["lm-prompt", True])
    page.wait_for_timeout(300)
    assert len(sent) == 1 and page.inner_text("#lm-status") == ""
    page.press("#lm-prompt", "Control+Enter")
    page.wait_for_selector("#lm-status:has-text('done')", timeout=60_000)
    assert len(sent) == 2


def test_right_to_left_characters_not_in_the_vocabulary_are_listed_in_their_order(server, open_page):
    """Hebrew letters a model never saw, named in the status line: each quoted letter in its place, left
    to right as the text has them. Quotes and spaces between right-to-left letters had joined them into
    one right-to-left run: the list reversed, its quotes paired with the wrong letters."""
    page = open_page(server + "#inside")
    ask(page, "inside", "in", "#in-status:has-text('vocabulary')", run="poems", text="The שלום river")
    placed = page.evaluate("""() => {
        const node = document.getElementById("in-status").firstChild, text = node.textContent;
        return [..."שלום"].map(c => {
            const at = text.indexOf(`"${c}"`), range = document.createRange();
            range.setStart(node, at);
            range.setEnd(node, at + 3);
            const box = range.getBoundingClientRect();
            return [at, box.left, box.top, range.toString()];
        });
    }""")
    assert all(at >= 0 for at, *_ in placed), placed
    assert len({top for _, _, top, _ in placed}) == 1, placed  # on one line, so their order is left to right
    lefts = [left for _, left, _, _ in placed]
    assert lefts == sorted(lefts), placed


def test_runs_table_shows_why_a_run_stopped_and_sorts_best_by_each_metric_s_direction(studio_dir, open_page, tmp_path):
    """A failed run's reason is on the page, not only in a tooltip keyboard and touch users cannot open;
    sorting by best puts each metric's better runs first (a lower loss, a higher accuracy); a diverged
    run's huge loss reads as 1.173e+31; a run evaluated once draws its accuracy from 0 to 1, not from -0.5;
    an image classifier's speed is in image rows per second."""
    import shutil

    def rescale(run, metric, factor, keep=None):
        path = served / run / "metrics.jsonl"
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()][:keep]
        path.write_text("".join(json.dumps({**r, metric: r[metric] * factor}) + "\n" for r in records
                                if metric in r), encoding="utf-8")

    served = tmp_path / "served"
    for source, name in [("poems", "poems"), ("poems", "poems-diverged"), ("sentiment", "sentiment"),
                         ("sentiment", "sentiment-worse"), ("sentiment", "sentiment-once"), ("digits", "digits")]:
        shutil.copytree(studio_dir / source, served / name)
    rescale("poems-diverged", "val_loss", 1e31)
    rescale("sentiment-worse", "val_accuracy", 0.5)
    rescale("sentiment-once", "val_accuracy", 1, keep=1)
    status = json.loads((served / "poems-diverged" / "status.json").read_text(encoding="utf-8"))
    status.update(status="failed", message="the loss became NaN at step 12; try a lower --lr")
    (served / "poems-diverged" / "status.json").write_text(json.dumps(status), encoding="utf-8")
    with studio_in_this_process(served) as url:
        page = open_page(url + "#runs?sort=best&runs=sentiment-once")
        page.wait_for_selector("figure.chart[data-metric='val_accuracy'] .main-svg")
        order = page.eval_on_selector_all("#runs-table tbody tr:not([hidden]) td.name", "cells => cells.map(c => c.textContent)")
        assert order.index("sentiment") < order.index("sentiment-worse") and order.index("poems") < order.index("poems-diverged")
        diverged = "#runs-table tr:has(input[data-run='poems-diverged'])"
        assert re.fullmatch(r"val_loss \d\.\d{3}e\+3\d @ \d+", page.inner_text(f"{diverged} td.best"))
        why = page.locator(f"{diverged} td.status .why")
        assert why.is_visible() and why.inner_text() == "the loss became NaN at step 12; try a lower --lr"
        y_range = page.evaluate("document.querySelector(\"figure.chart[data-metric='val_accuracy'] .plot\")._fullLayout.yaxis.range")
        assert y_range[0] == 0 and y_range[1] >= 1, y_range
        tick(page, "sentiment-once", on=False)
        tick(page, "digits")
        page.wait_for_selector("figure.chart[data-metric='chars_per_sec'] .main-svg")
        assert "image rows per second" in page.text_content("figure.chart[data-metric='chars_per_sec'] .g-ytitle")
