"""Links to the studio's views (the address bar keeps a view's settings): a link opened in a tab that
already shows the studio, as pasting one or Back and Forward do, opens what it names, as a reload would;
the ticked runs of a grid, whose names hold commas, survive a reload; a link naming a run that
is not served says so; and a number field left empty is refused by name
instead of being sent as 0. Every page asserts at its end that the browser logged no error."""

import shutil

import pytest

from helpers import studio_in_this_process

pytest.importorskip("uvicorn", reason="the studio's extra is not installed: pip install 'charseq[studio]'")


def open_link(page, hash_):
    """Open `hash_` in the tab already showing the studio, as pasting the link into the address bar does
    (the page is not loaded again: only its #fragment changes)."""
    page.evaluate("hash => { location.hash = hash; }", hash_)


def ticked(page):
    return page.eval_on_selector_all("#runs-table input[data-run]:checked", "boxes => boxes.map(b => b.dataset.run)")


def test_a_link_opened_over_the_page_opens_its_settings(server, open_page):
    page = open_page(server + "#generate?run=poems")
    page.fill("#lm-length", "33")
    open_link(page, "#generate?run=poems&prompt=hello&temperature=0.5")
    page.wait_for_function("document.getElementById('lm-prompt').value === 'hello'")
    assert page.input_value("#lm-temperature") == "0.5"
    assert page.input_value("#lm-length") == "200"  # left out of the link: its default, not what was typed before
    assert page.evaluate("location.hash") == "#generate?run=poems&prompt=hello&temperature=0.5"  # kept, not overwritten

    open_link(page, "#runs?runs=poems,sentiment&log=1")
    page.wait_for_function("document.getElementById('page-runs').hidden === false")
    assert sorted(ticked(page)) == ["poems", "sentiment"] and page.is_checked("#chart-log")

    assert page.title() == "charseq studio"
    page.go_back()  # Back returns to the playground as the link left it
    page.wait_for_function("document.getElementById('page-generate').hidden === false")
    assert page.title() == "Generate · charseq studio"  # each view names itself in the history and the tab
    assert page.input_value("#lm-prompt") == "hello" and page.input_value("#lm-temperature") == "0.5"
    page.go_forward()
    page.wait_for_function("document.getElementById('page-runs').hidden === false")
    assert sorted(ticked(page)) == ["poems", "sentiment"]


def test_a_link_to_a_run_that_is_not_served_says_so(server, open_page):
    page = open_page(server + "#generate?run=deleted-long-ago&prompt=hi")
    note = page.locator("#page-generate .missing-run")
    assert note.is_visible() and note.inner_text() == f'no run named "deleted-long-ago" is served; showing "{page.input_value("#lm-run")}"'
    assert page.input_value("#lm-prompt") == "hi"  # the rest of the link still opens
    page.select_option("#lm-run", "grid/lr=0.01")  # choosing a run answers the note
    assert note.count() == 0

    open_link(page, "#translate?run=renamed&source=abc")  # over the open page too
    page.wait_for_selector("#page-translate .missing-run")
    assert '"renamed"' in page.inner_text("#page-translate .missing-run") and page.input_value("#tr-run") == "reverse"
    open_link(page, "#translate?run=reverse&source=cba")
    page.wait_for_function("!document.querySelector('#page-translate .missing-run')")



def test_a_runs_link_naming_a_run_that_is_not_served_says_so(server, open_page):
    """The runs page draws the linked runs it serves and names the others, instead of leaving them out
    without a word."""
    page = open_page(server + "#runs?runs=poems&runs=deleted-long-ago")
    page.wait_for_selector("figure.chart[data-metric='val_loss'] .main-svg")
    page.wait_for_function("document.getElementById('charts-note').textContent.includes('deleted-long-ago')")
    assert page.is_visible("#charts-note")
    assert page.inner_text("#charts-note") == "Not served here (or not yet): deleted-long-ago."


def test_a_link_opens_with_its_result_as_an_example_does_but_generate_waits(server, open_page):
    """A link (or a reload) to Translate, Classify or Look inside shows what it names decoded, classified
    or analyzed, as clicking an example does; a link to Generate fills in the prompt and waits for Generate."""
    page = open_page(server + "#translate?run=reverse&source=abc")
    page.wait_for_selector("#tr-heatmap table.heatmap", timeout=60_000)
    assert page.locator("#tr-hyps tr.chosen").count() == 1
    open_link(page, "#translate?run=reverse&source=cba")  # over the open page too
    page.wait_for_function("document.querySelector('#tr-heatmap th:nth-child(2)')?.textContent === 'c'")

    page = open_page(server + "#classify?run=sentiment&text=truly%20boring")
    page.wait_for_selector("#cl-saliency .tok", timeout=60_000)
    assert page.locator("#cl-saliency .tok").count() == len("truly boring")
    open_link(page, "#inside?run=poems&text=abc")
    page.wait_for_selector("#in-output .tok", timeout=60_000)
    assert page.locator("#in-output .tok").count() == 3

    page = open_page(server + "#generate?run=poems&prompt=The&length=5&seed=1")
    page.wait_for_timeout(500)
    assert page.inner_text("#lm-output") == "" and page.inner_text("#lm-status") == ""
    assert page.input_value("#lm-prompt") == "The"


def test_a_fraction_in_a_whole_number_field_is_refused_by_name(server, open_page):
    page = open_page(server + "#generate?run=poems&length=5")
    page.fill("#lm-beam", "2.5")
    page.click("#lm-go")
    assert page.inner_text("#lm-status") == "beam must be a whole number, not 2.5"
    page.click("#nav-translate")
    page.fill("#tr-source", "abc")
    page.fill("#tr-nbest", "1.5")
    page.click("#tr-go")
    assert page.inner_text("#tr-status") == "n-best must be a whole number, not 1.5"


def test_an_empty_number_field_is_refused_by_name_not_sent_as_0(server, open_page):
    page = open_page(server + "#generate?run=poems&length=5&seed=1")
    page.click("#lm-go")
    page.wait_for_selector("#lm-status:has-text('done')", timeout=60_000)
    generated = page.inner_text("#lm-output")
    page.fill("#lm-length", "")  # cleared, or typed as something the browser cannot read as a number
    page.click("#lm-go")
    assert page.inner_text("#lm-status") == "length is empty: type a number"
    assert page.inner_text("#lm-output") == generated and page.is_enabled("#lm-go")  # nothing sent, nothing lost

    page.click("#nav-translate")
    page.fill("#tr-source", "abc")
    page.fill("#tr-beam", "")
    page.click("#tr-go")
    assert page.inner_text("#tr-status") == "beam is empty: type a number"


def test_a_grids_ticked_runs_survive_a_reload(studio_dir, open_page, tmp_path):
    names = ["grid/units=16,lr=0.003", "grid/units=32,lr=0.003"]  # as charseq grid names them
    for name in names:
        shutil.copytree(studio_dir / "poems", tmp_path / name)
    for name in ["poems", "sentiment"]:
        shutil.copytree(studio_dir / name, tmp_path / name)
    with studio_in_this_process(tmp_path) as url:
        page = open_page(url + "#runs")
        assert sorted(ticked(page)) == names  # a grid's runs are ticked at first
        page.reload()
        page.wait_for_selector("body[data-ready]")
        assert sorted(ticked(page)) == names
        page.wait_for_selector("figure.chart[data-metric=val_loss] .main-svg")

        # A link that lists the ticked runs as one comma-separated value, as links once did, still opens them.
        page.goto(url + "#runs?runs=sentiment,poems")
        page.reload()
        page.wait_for_selector("body[data-ready]")
        page.wait_for_function("document.querySelectorAll('#runs-table input[data-run]:checked').length === 2")
        assert sorted(ticked(page)) == ["poems", "sentiment"]


def test_a_link_to_a_tab_the_page_does_not_have_opens_the_runs(server, open_page):
    page = open_page(server + "#genrate?run=poems")  # mistyped
    assert page.is_visible("#page-runs") and page.evaluate("location.hash").startswith("#runs")
    page.locator('#runs-table input[data-run="reverse"]').check()
    assert "runs=reverse" in page.evaluate("location.hash")  # the runs' settings are kept in the address again
    open_link(page, "#nowhere")
    page.wait_for_function("location.hash.startsWith('#runs')")
    assert page.is_visible("#page-runs")
