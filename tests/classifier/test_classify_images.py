"""`charseq classify` of an image classifier: image files (PNG, JPEG, ...) of the size it reads, and
`classify_images` over arrays, giving the answers of the model itself."""

import json

import numpy as np
import pytest
import tensorflow as tf

import charseq
from charseq.errors import CharseqError
from charseq.heads.classifier.inference import predict_probabilities
from helpers import assert_clean_error, run_cli_in_process

PIXELS = np.random.default_rng(3).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)


def write_png(path, grey: np.ndarray, channels: int = 1):
    """`grey` [rows, cols] as a PNG of 1 (grey) or 3 (the same level in red, green and blue) channels."""
    image = np.repeat(grey[:, :, None], channels, axis=2)
    path.write_bytes(tf.io.encode_png(image).numpy())
    return path


def test_classify_reads_image_files_as_the_model_reads_pixels(finished, tmp_path):
    run = finished["classify-mnist"]
    model, _, config = charseq.load_classifier(run)
    probs = predict_probabilities(model, PIXELS)
    files = [write_png(tmp_path / "a.png", PIXELS[0]), write_png(tmp_path / "b.png", PIXELS[1], channels=3),
             write_png(tmp_path / "c.png", PIXELS[2])]

    r = run_cli_in_process("classify", "--model", run, *files)
    assert r.returncode == 0, r.stderr
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    assert [row[2] for row in rows] == [str(f) for f in files]
    assert [row[0] for row in rows] == [config["labels"][i] for i in probs.argmax(-1)]
    assert [float(row[1]) for row in rows] == pytest.approx(probs.max(-1), abs=1e-3)

    (tmp_path / "list.txt").write_text(f"{files[0]}\n\n{files[2]}\n")  # a blank line keeps its place
    r = run_cli_in_process("classify", "--model", run, "--input", tmp_path / "list.txt", "--json")
    assert r.returncode == 0, r.stderr
    answers = [json.loads(line) for line in r.stdout.splitlines()]
    assert [a["image"] for a in answers] == [str(files[0]), "", str(files[2])] and answers[1]["label"] is None
    np.testing.assert_allclose([list(answers[i]["probabilities"].values()) for i in (0, 2)], probs[[0, 2]],
                               atol=1e-6)

    answers = charseq.classify_images(run, PIXELS)
    np.testing.assert_allclose([list(a["probabilities"].values()) for a in answers], probs, atol=1e-6)
    assert [a["label"] for a in answers] == [config["labels"][i] for i in probs.argmax(-1)]


def test_an_image_file_the_model_cannot_read_is_one_line(finished, tmp_path):
    run = finished["classify-mnist"]
    good = write_png(tmp_path / "good.png", PIXELS[0])
    big = write_png(tmp_path / "big.png", np.zeros((40, 30), np.uint8))
    (tmp_path / "notes.txt").write_text("not a picture")
    for args, fragments in [((good, big), ("big.png is 30x40 pixels", "images of 28x28")),
                            ((tmp_path / "notes.txt",), ("notes.txt is not an image file", "PNG")),
                            ((tmp_path / "absent.png",), ("absent.png does not exist",)),
                            ((good, ""), ("empty file name", "argument 2")),
                            ((), ("give image files",))]:
        assert_clean_error(run_cli_in_process("classify", "--model", run, *args), *fragments)

    text_run = finished["train-classifier"]
    with pytest.raises(CharseqError, match="classifies texts, not images"):
        charseq.classify_images(text_run, PIXELS)
    with pytest.raises(CharseqError, match=r"one image goes in a batch: images\[None\]"):
        charseq.classify_images(run, PIXELS[0])
    with pytest.raises(CharseqError, match="pixel values must be from 0 to 255"):
        charseq.classify_images(run, PIXELS * 2.0)


def test_a_digit_drawn_on_a_transparent_background_is_read_by_its_strokes(finished, tmp_path):
    """Black (or red) strokes on a transparent canvas, as drawing programs save them: the strokes are
    the digit, light on black as MNIST's, not black on black. Grey with alpha, and a picture whose
    transparency frames nothing, read as before."""
    run = finished["classify-mnist"]
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    files = []
    for name, colour in (("black.png", (0, 0, 0)), ("red.png", (200, 0, 0)), ("white.png", (255, 255, 255))):
        rgba = np.zeros((28, 28, 4), np.uint8)
        rgba[..., :3], rgba[..., 3] = colour, digit
        files.append(tmp_path / name)
        files[-1].write_bytes(tf.io.encode_png(rgba).numpy())
    grey_alpha = np.stack([np.zeros_like(digit), digit], axis=-1)
    files.append(tmp_path / "grey-alpha.png")
    files[-1].write_bytes(tf.io.encode_png(grey_alpha).numpy())
    opaque = np.dstack([np.repeat(digit[..., None], 3, axis=2), np.full_like(digit, 255)])
    files.append(tmp_path / "opaque.png")
    files[-1].write_bytes(tf.io.encode_png(opaque).numpy())

    model, _, config = charseq.load_classifier(run)
    want = predict_probabilities(model, digit[None].astype(np.float32))[0]
    r = run_cli_in_process("classify", "--model", run, "--json", *files)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    for line in r.stdout.splitlines():
        np.testing.assert_allclose(list(json.loads(line)["probabilities"].values()), want, atol=1e-5)


def test_a_dark_digit_on_a_light_background_is_classified_with_a_warning(finished, tmp_path):
    """MNIST draws light digits on black: a picture of a dark digit on paper gets a label all the
    same (a data set of one's own may draw dark on light), with one warning line on stderr naming
    it, and none for pictures on black."""
    run = finished["classify-mnist"]
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255  # a "1", light on black, inside MNIST's middle 20x20
    on_black = write_png(tmp_path / "on-black.png", digit)
    on_paper = write_png(tmp_path / "on-paper.png", 255 - digit, channels=3)

    r = run_cli_in_process("classify", "--model", run, on_black)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    r = run_cli_in_process("classify", "--model", run, on_paper)
    assert r.returncode == 0 and r.stdout.split("\t")[2].strip() == str(on_paper), r.stderr
    assert r.stderr.splitlines() == [f"warning: {on_paper} has a light background; a model trained on MNIST reads "
                                     "light digits on black, so invert it (255 minus each pixel) or the label "
                                     "means little"]
    r = run_cli_in_process("classify", "--model", run, "--json", on_black, on_paper, on_paper)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 3, r.stderr
    assert r.stderr.startswith(f"warning: 2 of the 3 images (the first {on_paper}) have a light background")


def test_float_images_scaled_to_0_1_are_read_as_classify_mnist_reads_them(finished):
    """Keras' examples scale MNIST to [0, 1] (x / 255), and classify-mnist reads such a data set as
    scaled: so does classify_images, image by image, rather than reading them as near-black."""
    run = finished["classify-mnist"]
    model, _, _ = charseq.load_classifier(run)
    probs = predict_probabilities(model, PIXELS)
    mixed = np.concatenate([PIXELS[:2] / 255.0, PIXELS[2:].astype(np.float32)])  # a 0-255 image beside them
    answers = charseq.classify_images(run, mixed)
    np.testing.assert_allclose([list(a["probabilities"].values()) for a in answers], probs, atol=1e-6)
    black = charseq.classify_images(run, np.zeros((1, 28, 28), np.float32))[0]["probabilities"]
    np.testing.assert_allclose(list(black.values()), predict_probabilities(model, np.zeros((1, 28, 28)))[0],
                               atol=1e-6)
