"""The library behind the studio: LM beam search (and `generate --beam`), generation with
probabilities, looking inside a language model, classifier saliency, seq2seq attention."""

import math

import numpy as np
import pytest

from charseq import kernels
from charseq.errors import CharseqError
from helpers import assert_clean_error, run_cli_in_process


@pytest.fixture(scope="module")
def lm(trained_run):
    from charseq.heads.lm.run import load_lm

    model, vocab, _ = load_lm(trained_run)
    return model, vocab


def test_beam_search_beats_greedy_and_gives_distinct_sorted_hypotheses(lm):
    from charseq.heads.lm.beam import BeamSearch
    from charseq.heads.lm.inference import Generator

    search = BeamSearch(*lm)
    for prompt in ["The ", "白日", ""]:
        (greedy_text, greedy_lp), = search(prompt, length=25, beam=1)
        assert greedy_text == Generator(*lm)(prompt, length=25, greedy=True)[0]  # beam 1 is greedy decoding
        hyps = search(prompt, length=25, beam=6, n_best=4)
        assert len(hyps) == 4 and len({t for t, _ in hyps}) == 4
        assert all(len(t) == 25 for t, _ in hyps)
        scores = [lp for _, lp in hyps]
        assert scores == sorted(scores, reverse=True)
        assert scores[0] >= greedy_lp - 1e-9, (prompt, hyps[0], greedy_lp)
    with pytest.raises(CharseqError, match="n-best"):
        search("The ", length=5, beam=2, n_best=3)


def test_generate_beam_on_the_command_line(trained_run):
    result = run_cli_in_process("generate", "--model", trained_run, "--prompt", "The ", "--length", "20",
                                "--beam", "4", "--n-best", "3")
    assert result.returncode == 0, result.stderr
    headers = [line for line in result.stdout.splitlines() if line.startswith("--- log-probability")]
    assert len(headers) == 3
    scores = [float(h.split()[2]) for h in headers]
    assert scores == sorted(scores, reverse=True) and all(s < 0 for s in scores)
    one = run_cli_in_process("generate", "--model", trained_run, "--prompt", "The ", "--length", "20", "--beam", "4")
    assert one.returncode == 0 and one.stdout.startswith("The ") and len(one.stdout.rstrip("\n")) == 24
    assert_clean_error(run_cli_in_process("generate", "--model", trained_run, "--beam", "2", "--n-best", "3"), "n-best")
    assert_clean_error(run_cli_in_process("generate", "--model", trained_run, "--beam", "0"), "beam")
    # Sampling options with beam search, which does not sample: refused, not silently ignored.
    for sampling, named in ((["--temperature", "0.5"], "--temperature does not"), (["--num-samples", "2"], "--num-samples"),
                            (["--seed", "1", "--greedy", "--top-p", "0.9"], "--greedy, --seed and --top-p do not")):
        assert_clean_error(run_cli_in_process("generate", "--model", trained_run, "--beam", "2", *sampling), named,
                           "beam search")
    # Nor with --greedy, which draws nothing (several samples would all be the same text).
    for drawing, named in ((["--seed", "2"], "--seed does not"), (["--num-samples", "3", "--top-k", "4"],
                                                                   "--num-samples and --top-k do not")):
        assert_clean_error(run_cli_in_process("generate", "--model", trained_run, "--greedy", *drawing), named, "--greedy")
    assert run_cli_in_process("generate", "--model", trained_run, "--greedy", "--length", "5").returncode == 0


def test_streamed_generation_matches_generate_and_reports_probabilities(lm):
    from charseq.heads.lm.inspect import LMProbe
    from charseq.heads.lm.inference import Generator

    probe = LMProbe(*lm)
    for options in [dict(temperature=0.8, seed=3), dict(temperature=1.2, top_k=5, top_p=0.9, seed=7),
                    dict(greedy=True)]:
        chunks = list(probe.stream("The ", length=50, **options))
        assert len(chunks) > 2  # it streams: several pieces, not one block
        tokens = [t for c in chunks for t in c]
        assert "".join(t["text"] for t in tokens) == Generator(*lm)("The ", length=50, **options)[0]
        for t in tokens:
            top = [p for _, p in t["top"]]
            assert len(top) == 5 and top == sorted(top, reverse=True) and 0 < t["p"] <= top[0] + 1e-6
            if options.get("greedy"):
                assert t["text"] == t["top"][0][0]
    # Several samples at once, drawn as `generate --num-samples` draws them, probabilities for each.
    chunks = list(probe.stream_samples("The ", length=30, seed=9, num_samples=3))
    texts = ["".join(t["text"] for c in chunks for t in c[i]) for i in range(3)]
    assert texts == Generator(*lm)("The ", length=30, seed=9, num_samples=3) and len(set(texts)) > 1
    assert all(len(t["top"]) == 5 and 0 < t["p"] <= 1 for c in chunks for sample in c for t in sample)
    stop_after = iter(range(2))
    assert len(list(probe.stream("The ", length=500, seed=1, should_stop=lambda: next(stop_after, 9) > 1))) == 2
    with pytest.raises(CharseqError, match="temperature"):
        list(probe.stream("The ", length=5, temperature=0))


@pytest.mark.skipif(not kernels.available(), reason="the kernel could not be built here")
def test_streamed_generation_runs_on_the_step_ops_packed_once_per_text(lm, monkeypatch):
    from charseq.heads.lm.inspect import LMProbe

    probe = LMProbe(*lm)
    packed, pack = [], probe.generator.packed
    monkeypatch.setattr(probe.generator, "packed", lambda: packed.append(pack()) or packed[-1])
    chunks = list(probe.stream("The ", length=300, seed=1))
    assert len(chunks) > 3 and len(packed) == 1 and packed[0] is not None  # not once per chunk, nor Keras' cell


def test_text_properties_and_unit_search():
    from charseq.heads.lm.inspect import best_units, text_properties

    props = text_properties(list('a"b"(c)\n12'))
    assert props["inside_quotes"].tolist() == [0, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    assert props["inside_brackets"].tolist() == [0, 0, 0, 0, 1, 1, 0, 0, 0, 0]
    assert props["position_in_line"].tolist() == [1, 2, 3, 4, 5, 6, 7, 0, 1, 2]
    assert props["after_newline"].tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 0, 0]
    assert props["digit"].tolist() == [0] * 8 + [1, 1]
    assert props["punctuation"].tolist() == [0, 1, 0, 1, 1, 0, 1, 0, 0, 0]
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(10, 6))
    acts[:, 4] = -props["inside_brackets"] + 0.01 * rng.normal(size=10)  # unit 4 tracks brackets (negatively)
    found = {u["property"]: u for u in best_units(acts, props)}
    assert found["inside_brackets"]["unit"] == 4 and found["inside_brackets"]["correlation"] < -0.99


def test_analyze_reports_surprise_activations_and_units(studio_dir):
    from charseq.heads.lm.inspect import LMProbe
    from charseq.heads.lm.run import load_lm

    probe = LMProbe(*load_lm(studio_dir / "poems")[:2])  # two layers
    text = 'The river "runs" (to the sea).\n白日依山尽 1234'
    report = probe.analyze(text, layer=1)
    tokens = report["tokens"]
    assert "".join(t["text"] for t in tokens) == text
    for t in tokens:
        assert math.isclose(t["surprise"], -math.log(t["p"]), rel_tol=1e-3, abs_tol=1e-3)
    assert report["mean_surprise"] == pytest.approx(np.mean([t["surprise"] for t in tokens]), abs=1e-3)
    assert len(report["activations"]) == probe.units and all(len(a) == len(text) for a in report["activations"])
    assert all(abs(v) <= 1 for a in report["activations"] for v in a)  # LSTM outputs are tanh-bounded
    assert {u["property"] for u in report["found_units"]} >= {"inside_quotes", "inside_brackets", "digit"}
    assert all(0 <= u["unit"] < probe.units for u in report["found_units"])
    # The surprise of the text is the model's own loss on it: the same as a teacher-forced pass.
    assert report["layers"] == 2 and probe.analyze(text, layer=0)["mean_surprise"] == report["mean_surprise"]
    with pytest.raises(CharseqError, match="layer"):
        probe.analyze(text, layer=2)


def test_classifier_occlusion_saliency_and_rows(studio_dir):
    from charseq.heads.classifier.inference import predict_probabilities
    from charseq.heads.classifier.run import load_classifier
    from charseq.heads.classifier.inspect import explain_image, explain_text
    from helpers import striped_images

    model, vocab, config = load_classifier(studio_dir / "sentiment")
    text = "a good film, really"
    report = explain_text(model, vocab, config, text)
    assert report["method"] == "occlusion" and "".join(report["tokens"]) == text
    label = config["labels"].index(report["label"])
    occluded = vocab.encode(text)
    occluded[3] = vocab.unk_id
    p = predict_probabilities(model, [vocab.encode(text), occluded])[:, label]
    assert report["saliency"][3] == pytest.approx(p[0] - p[1], abs=1e-4)
    assert sum(report["probabilities"].values()) == pytest.approx(1, abs=1e-3)
    long = explain_text(model, vocab, config, text + " and good")  # past the run's --max-len of 24: not read
    assert long["read"] == 24 and long["saliency"][24:] == [0] * 4 and report["read"] == len(text)

    model, _, config = load_classifier(studio_dir / "digits")
    images, labels = striped_images(8, 5)
    right = 0
    for image, y in zip(images, labels):
        report = explain_image(model, config, image.tolist())
        assert len(report["rows"]) == 28 and all(sum(r) == pytest.approx(1, abs=1e-3) for r in report["rows"])
        assert report["rows"][-1] == pytest.approx(predict_probabilities(model, image[None])[0], abs=1e-4)
        right += report["label"] == str(y)
    assert right >= 6  # the stripes are learnt
    with pytest.raises(CharseqError, match="28"):
        explain_image(model, config, [[0] * 27] * 28)
    with pytest.raises(CharseqError, match="255"):
        explain_image(model, config, [[300] * 28] * 28)


def test_translation_hypotheses_and_attention(studio_dir):
    from charseq.heads.seq2seq.inspect import explain_translation
    from charseq.heads.seq2seq.run import Translator

    translator = Translator(studio_dir / "reverse")
    report = explain_translation(translator, "abcde", beam=4, n_best=3)
    assert [h["text"] for h in report["hypotheses"]] == [t for t, _, _ in translator(["abcde"], beam=4, n_best=3)[0]]
    scores = [h["score"] for h in report["hypotheses"]]
    assert scores == sorted(scores, reverse=True)
    attention = np.array(report["attention"])
    assert attention.shape == (len(report["hypotheses"][0]["text"]) + 1, 5)
    assert np.allclose(attention.sum(axis=1), 1, atol=1e-3) and report["output_tokens"][-1] == "</s>"
    # Reversing: the first output character looks mostly at the end of the source.
    assert attention[0].argmax() >= 3
    assert report["cut_off"] is False


def test_a_translation_cut_off_at_the_decoding_limit_has_no_end_symbol(studio_dir):
    """Stopped at the decoding limit, a hypothesis never produced the end symbol: the heat-map has
    no row for one, and the report says it was cut off."""
    from charseq.heads.seq2seq.inspect import explain_translation
    from charseq.heads.seq2seq.run import Translator

    translator = Translator(studio_dir / "reverse")
    translator.config["model"]["max_output_len"] = 3  # as a run trained with --max-output-len 3
    report = explain_translation(translator, "abcde", beam=2, n_best=2)
    assert [len(h["text"]) for h in report["hypotheses"]] == [3, 3]
    assert report["cut_off"] is True and "</s>" not in report["output_tokens"]
    assert len(report["attention"]) == len(report["output_tokens"]) == 3
