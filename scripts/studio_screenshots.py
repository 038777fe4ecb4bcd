"""The README's studio screenshots: `charseq serve` on trained runs, driven by headless Chromium.

    python scripts/studio_screenshots.py RUNS_DIR --out docs/ \
        --lm shakespeare --seq2seq dates --text sst2 --image mnist

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
                viewport={"width": 1280, "height": 820})
            page = browser.new_page()
            page.goto(url)
            page.wait_for_selector("body[data-ready]")
            page.wait_for_timeout(500)
            page.screenshot(path=out / "studio-runs.png")

            page.click("#nav-generate")
            page.select_option("#lm-run", args.lm)
            page.fill("#lm-prompt", args.prompt)
            page.fill("#lm-length", "400")
            page.fill("#lm-seed", "1")
            page.click("#lm-go")
            page.wait_for_selector("#lm-status:has-text('done')", timeout=120_000)
            page.hover("#lm-output .tok >> nth=40")
            page.screenshot(path=out / "studio-generate.png")

            page.click("#nav-inside")
            page.select_option("#in-run", args.lm)
            page.fill("#in-text", 'KING RICHARD II:\nNo, not a whit: "the king" (God save him) is dead.\nWhat say you, 1 or 2?\n')
            page.select_option("#in-layer", "1")
            page.click("#in-go")
            page.wait_for_selector("#in-units li a")
            page.click("#in-units li a >> nth=0")
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
                page.wait_for_selector("#cl-status:has-text('occlusion')")
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
                page.screenshot(path=out / "studio-classify-image.png")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=15)


if __name__ == "__main__":
    main()
