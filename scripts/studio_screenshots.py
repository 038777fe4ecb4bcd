"""The docs' studio screenshots: `charseq serve` on trained runs, driven by headless Chromium.

    python scripts/studio_screenshots.py RUNS_DIR --out docs/ \
        --lm shakespeare --seq2seq dates --text sst2 --image mnist

--width 420 (and --dark) show the page as a phone (and a browser in dark mode) would. The image
classifier's page is taken whole: the digit drawn, then the run's confusion matrix and misclassified
images on its validation data (MNIST itself must be where the run finds it: charseq data get mnist).

Starts a real server on 127.0.0.1 (any free port), opens each page in Debian's /usr/bin/chromium
(Playwright, no browser download), uses it as a person would and saves studio-*.png.
"""

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
INSIDE_TEXT = ("KING RICHARD II:\nNo, not a whit: the king, God save him, is dead.\nWhat say you, lords, will you be silent?\n\n"
               "QUEEN:\nSo say I too, my lord; and yet, as you know well, the crown is heavy,\n"
               "and every head that wears it learns it soon: the king is dead, they cry,\n"
               "long live the king! and then they count the days until the next.\n\n"
               "KING RICHARD II:\nThen let them count; I will not. Go, call the lords to me.\n")
# (long enough for the units' correlations, and in tiny-shakespeare's vocabulary: no digits, brackets or double quotes)
SEVEN = [(6, 7), (21, 7), (20, 9), (17, 13), (14, 18), (12, 23)]  # a "7" in MNIST's 28x28 grid, stroke points


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("runs")
    parser.add_argument("--out", default="docs")
    parser.add_argument("--lm", required=True)
    parser.add_argument("--prompt", default="ROMEO:\n")
    parser.add_argument("--seq2seq", required=True)
    parser.add_argument("--source", default="March 7, 1994")
    parser.add_argument("--text")
    parser.add_argument("--sentence", default="a gorgeous, witty, seductive movie")
    parser.add_argument("--image")
    parser.add_argument("--width", type=int, default=1400, help="window width in CSS pixels")
    parser.add_argument("--dark", action="store_true", help="a browser that prefers dark mode")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen([sys.executable, "-m", "charseq.cli", "serve", args.runs, "--port", "0"],
                              stdout=subprocess.PIPE, text=True)
    try:
        url = re.search(r"http://\S+/", server.stdout.readline()).group(0)
        with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
            browser = p.chromium.launch_persistent_context(  # a fresh profile: --user-data-dir
                profile, executable_path="/usr/bin/chromium", headless=True, args=FLAGS,
                viewport={"width": args.width, "height": 900}, color_scheme="dark" if args.dark else "light")
            page = browser.new_page()
            page.goto(url)
            page.wait_for_selector("body[data-ready]")
            page.check("#runs-all")  # every run's curves: one chart per metric
            page.wait_for_selector("figure.chart .main-svg")
            page.wait_for_timeout(1000)
            page.screenshot(path=out / "studio-runs.png", full_page=args.width < 800)

            page.click("#nav-generate")
            page.select_option("#lm-run", args.lm)
            page.fill("#lm-prompt", args.prompt)
            page.fill("#lm-length", "110")
            page.fill("#lm-seed", "3")
            page.fill("#lm-samples", "2")  # two continuations of the prompt, one under another
            page.click("#lm-go")
            page.wait_for_selector("#lm-status:has-text('done')", timeout=120_000)
            page.locator("#lm-output .tok").nth(57).focus()  # a surprising one; its tooltip: probability, surprise, top 5
            page.screenshot(path=out / "studio-generate.png")

            page.click("#nav-inside")
            page.select_option("#in-run", args.lm)
            page.fill("#in-text", INSIDE_TEXT)
            page.select_option("#in-layer", "1")
            page.click("#in-go")
            page.wait_for_selector("#in-units li button")
            page.click("#in-units li button >> nth=0")
            page.screenshot(path=out / "studio-inside.png")

            page.click("#nav-translate")
            page.select_option("#tr-run", args.seq2seq)
            page.fill("#tr-source", args.source)
            page.click("#tr-go")
            page.wait_for_selector("table.heatmap td")
            page.screenshot(path=out / "studio-attention.png")

            if args.text:
                page.click("#nav-classify")
                page.select_option("#cl-run", args.text)
                page.fill("#cl-text", args.sentence)
                page.click("#cl-go")
                page.wait_for_selector("#cl-status:has-text('occlusion')", timeout=300_000)  # beside the validation report
                page.locator("#cl-saliency .tok").nth(2).focus()  # its tooltip: what occluding it did
                page.screenshot(path=out / "studio-classify-text.png")
            if args.image:
                page.click("#nav-classify")
                page.select_option("#cl-run", args.image)
                box = page.locator("#cl-canvas").bounding_box()
                at = lambda x, y: (box["x"] + x * box["width"] / 28, box["y"] + y * box["height"] / 28)  # noqa: E731
                page.mouse.move(*at(*SEVEN[0]))
                page.mouse.down()
                for point in SEVEN[1:]:
                    page.mouse.move(*at(*point), steps=12)
                page.mouse.up()
                page.wait_for_selector("#cl-img-status:has-text('%')")
                # and below it the run's confusion matrix and mistakes on its validation images
                page.wait_for_selector("#cl-val-status:has-text('accuracy')", timeout=600_000)
                page.wait_for_selector("#cl-confusion .main-svg")
                page.wait_for_timeout(500)
                page.screenshot(path=out / "studio-classify-image.png", full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=15)


if __name__ == "__main__":
    main()
