"""The encoder-decoder: synthetic pairs, training, greedy and beam decoding, evaluation, bad input."""

import datetime
import json
import re

import numpy as np
import pytest
import tensorflow as tf

from charseq import kernels
from charseq.data.pairs import make_pairs, read_pairs
from charseq.errors import CharseqError
from charseq.vocab import BOS
from charseq.heads.seq2seq.inference import edit_distance, score_outputs
from charseq.heads.seq2seq.run import Translator, train_seq2seq
from helpers import assert_clean_error, read_metrics, run_cli, run_cli_in_process

FAST = dict(units=64, embedding_dim=16, batch_size=32, precision="float32", lr=1e-2)


def test_synthetic_tasks_are_correct_and_seeded():
    for source, target in make_pairs("addition", 300, seed=1, digits=3):
        a, b = source.split("+")
        assert int(a) + int(b) == int(target) and max(len(a), len(b)) <= 3
    for source, target in make_pairs("reverse", 50, seed=1):
        assert target == source[::-1]
    for source, target in make_pairs("sort", 50, seed=1):
        assert target == "".join(sorted(source))
    for _, target in make_pairs("dates", 200, seed=1):
        assert datetime.date.fromisoformat(target).isoformat() == target
    formats = {s.split()[0].isupper() or s.count("/") or s.count(".") for s, _ in make_pairs("dates", 200, seed=2)}
    assert len(formats) > 1  # several human formats, not one
    assert make_pairs("dates", 30, seed=4) == make_pairs("dates", 30, seed=4) != make_pairs("dates", 30, seed=5)
    sources = [s for s, _ in make_pairs("addition", 2000, seed=0, digits=2)]
    assert len(set(sources)) == len(sources)


def test_edit_distance_and_scores():
    assert edit_distance("kitten", "sitting") == 3 and edit_distance("", "abc") == 3 and edit_distance("ab", "ab") == 0
    scores = score_outputs(["357", "12", "abc"], ["357", "13", "abcd"])
    assert scores["exact_match"] == pytest.approx(1 / 3)
    assert scores["char_error_rate"] == pytest.approx(2 / 9)


@pytest.fixture(scope="module")
def reverse_run(tmp_path_factory):
    """A small model that has learnt to reverse short strings (attention makes this quick)."""
    d = tmp_path_factory.mktemp("s2s")
    pairs = make_pairs("reverse", 3000, seed=0, length=(2, 5))
    (d / "train.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs[:2800]))
    (d / "test.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs[2800:]))
    train_seq2seq(d / "train.tsv", d / "run", epochs=8, eval_every=200, log=lambda s: None,
                  progress_bar=False, **FAST)
    return d


def test_training_learns_and_evaluate_reports(reverse_run):
    r = run_cli_in_process("evaluate", "--model", reverse_run / "run", reverse_run / "test.tsv", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["examples"] == 200 and report["exact_match"] > 0.9 and report["char_error_rate"] < 0.05
    records = read_metrics(reverse_run / "run")
    assert {"val_loss", "val_exact_match", "val_char_error_rate"} <= set(records[-1])


def test_translate_through_the_cli(reverse_run, tmp_path):
    run = reverse_run / "run"
    r = run_cli("translate", "--model", run, "abcd", "xyz")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["dcba", "zyx"]
    (tmp_path / "in.txt").write_text("hello\nab\n")
    r = run_cli_in_process("translate", "--model", run, "--input", tmp_path / "in.txt", "--beam", "4", "--n-best", "3", "--json")
    results = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["source"] for x in results] == ["hello", "ab"]
    assert results[1]["hypotheses"][0]["text"] == "ba" and len(results[1]["hypotheses"]) == 3
    log_probs = [h["score"] for h in results[0]["hypotheses"]]
    assert log_probs == sorted(log_probs, reverse=True)


def test_translate_input_names_the_line_it_refuses(reverse_run, tmp_path):
    run = reverse_run / "run"
    (tmp_path / "in.txt").write_text("abc\n\nab1\n")
    assert_clean_error(run_cli_in_process("translate", "--model", run, "--input", tmp_path / "in.txt"),
                       f"{tmp_path / 'in.txt'} line 3 ('ab1') has characters", "'1'", "--unknown unk")
    # A file of pairs given as --input: its tab is no character of the model's, and no --unknown helps.
    (tmp_path / "pairs.tsv").write_text("abc\tcba\n")
    r = run_cli_in_process("translate", "--model", run, "--input", tmp_path / "pairs.tsv")
    assert_clean_error(r, f"{tmp_path / 'pairs.tsv'} line 1 has a tab", "one source per line",
                       f"charseq evaluate --model {run} {tmp_path / 'pairs.tsv'}")
    assert "--unknown" not in r.stderr and r.stdout == ""
    r = run_cli_in_process("translate", "--model", run, "--input", tmp_path / "pairs.tsv", "--unknown", "unk")
    assert r.returncode == 0 and r.stdout.endswith("\tabc\tcba\n"), r.stderr


def test_evaluate_counts_sources_the_model_cannot_read(reverse_run, tmp_path):
    """evaluate reads unseen source characters as unknown, so a file with a header line or of another
    task scores, but says how many sources it could not read instead of passing for a poor model."""
    run = reverse_run / "run"
    (tmp_path / "header.tsv").write_text("Wort\tUmgekehrt\nabc\tcba\nab\tba\n")  # names charseq does not know
    r = run_cli_in_process("evaluate", "--model", run, tmp_path / "header.tsv")
    assert r.returncode == 0, r.stderr
    assert ("on 3 pairs (beam 1; 1 source with characters the model never saw, read as unknown; 1 target with "
            "characters the model never outputs, which no output can match)") in r.stdout, r.stdout
    r = run_cli_in_process("evaluate", "--model", run, tmp_path / "header.tsv", "--json")
    assert json.loads(r.stdout)["unknown_sources"] == 1
    r = run_cli_in_process("evaluate", "--model", run, reverse_run / "test.tsv", "--json")
    assert "unknown_sources" not in json.loads(r.stdout)  # every source readable: nothing to say


def test_evaluate_counts_targets_no_output_can_match(reverse_run, tmp_path):
    """A target with a character the model never outputs (a file of another task or format) can never
    be matched, and exact match fell with nothing to say why."""
    run = reverse_run / "run"
    (tmp_path / "other.tsv").write_text("abc\tCBA\nab\tba\nca\tac!\n")
    r = run_cli_in_process("evaluate", "--model", run, tmp_path / "other.tsv")
    assert r.returncode == 0, r.stderr
    assert ("on 3 pairs (beam 1; 2 targets with characters the model never outputs, which no output can match)"
            in r.stdout), r.stdout
    r = run_cli_in_process("evaluate", "--model", run, tmp_path / "other.tsv", "--json")
    assert json.loads(r.stdout)["unknown_targets"] == 2 and "unknown_sources" not in json.loads(r.stdout)
    r = run_cli_in_process("evaluate", "--model", run, reverse_run / "test.tsv", "--json")
    assert "unknown_targets" not in json.loads(r.stdout)  # every target reachable: nothing to say


def test_translate_warns_of_outputs_cut_off_at_the_decoding_limit(reverse_run):
    """An output stopped at --max-output-len reads like a whole one; standard error says it was cut."""
    run = reverse_run / "run"
    r = run_cli_in_process("translate", "--model", run, "--max-output-len", "3", "abcde", "ab")
    assert r.returncode == 0 and r.stdout.splitlines() == ["edc", "ba"], r.stderr
    assert r.stderr.strip() == ("warning: 1 of the 2 outputs stopped at the decoding limit of 3 characters before "
                                "the model ended it (cut off); --max-output-len sets the limit")
    r = run_cli_in_process("translate", "--model", run, "--max-output-len", "3", "abcde", "ab", "--json")
    assert [[h.get("cut_off") for h in json.loads(line)["hypotheses"]] for line in r.stdout.splitlines()] == \
        [[True], [None]]  # said of the cut hypothesis only: a whole one has the keys it always had
    r = run_cli_in_process("translate", "--model", run, "--beam", "3", "abcde")
    assert r.returncode == 0 and r.stdout == "edcba\n" and r.stderr == ""  # ended: nothing to say


def test_decoding_limits_are_bounded(reverse_run, tmp_path):
    """Past int32, --max-output-len wrapped round to a negative count of steps: an empty output of
    log-probability 0, or an internal error with --beam."""
    run = reverse_run / "run"
    for beam in ("1", "3"):
        assert_clean_error(run_cli_in_process("translate", "--model", run, "--beam", beam, "--max-output-len",
                                              "3000000000", "abc"), "--max-output-len must be at most 1,000,000")
    assert_clean_error(run_cli_in_process("evaluate", "--model", run, reverse_run / "test.tsv", "--beam", "100000"),
                       "--beam must be at most 1,000")
    with pytest.raises(CharseqError, match="^max_len must be at most"):  # its keyword, to Python code
        Translator(run)(["abc"], max_len=2**32)
    r = run_cli_in_process("train-seq2seq", reverse_run / "train.tsv", "--out", tmp_path / "r", "--max-steps", "1",
                           "--max-output-len", "3000000000")
    assert_clean_error(r, "--max-output-len must be between 1 and 1,000,000, not 3000000000")
    assert not (tmp_path / "r").exists()


def test_train_warns_of_a_max_output_len_shorter_than_its_targets(reverse_run, tmp_path):
    """Targets longer than --max-output-len can never be produced whole: exact match stays low and,
    unwarned, nothing says why."""
    r = run_cli_in_process("train-seq2seq", reverse_run / "train.tsv", "--out", tmp_path / "r", "--max-steps", "1",
                           "--units", "8", "--embedding-dim", "4", "--max-output-len", "4")
    assert r.returncode == 0, r.stderr
    warning = next(line for line in r.stdout.splitlines() if line.startswith("warning: --max-output-len"))
    longer = sum(len(line.split("\t")[1]) > 4 for line in (reverse_run / "train.tsv").read_text().splitlines())
    counted = int(re.search(r"shorter than ([\d,]+) of the", warning)[1].replace(",", ""))
    assert 0 < counted <= longer and "the longest has 5 characters" in warning  # of the pairs not held out
    assert "without it the limit is 20" in warning  # twice the longest target, and 10
    r = run_cli_in_process("train-seq2seq", reverse_run / "train.tsv", "--out", tmp_path / "r2", "--max-steps", "1",
                           "--units", "8", "--embedding-dim", "4", "--max-output-len", "5")
    assert r.returncode == 0 and "warning: --max-output-len" not in r.stdout, r.stderr


def test_train_warns_of_validation_pairs_with_characters_training_lacks(reverse_run, tmp_path):
    """A validation pair whose source or target has a character no training pair has can never be
    matched exactly, and val_exact_match stayed below 1 with nothing to say why."""
    (tmp_path / "val.tsv").write_text("abc\tcba\nAbc\tcbA\nab\tba!\nabC\tCba!\n")
    r = run_cli_in_process("train-seq2seq", reverse_run / "train.tsv", "--val", tmp_path / "val.tsv", "--out",
                           tmp_path / "r", "--max-steps", "1", "--units", "8", "--embedding-dim", "4")
    assert r.returncode == 0, r.stderr
    assert ("warning: 3 of the 4 validation pairs have characters no training pair has: 2 sources ('A' 'C'), "
            "read as unknown; 3 targets ('A' '!' 'C'), which no output can match") in r.stdout.splitlines()
    r = run_cli_in_process("train-seq2seq", reverse_run / "train.tsv", "--val", reverse_run / "test.tsv", "--out",
                           tmp_path / "r2", "--max-steps", "1", "--units", "8", "--embedding-dim", "4")
    assert r.returncode == 0 and "validation pairs have characters" not in r.stdout, r.stderr


def test_validating_on_the_training_file_itself_is_said_not_warned_of(reverse_run, tmp_path):
    """--val the training file, as the guide advises for a phrasebook, was warned of as validation
    pairs flattered by sources shared with training; a copy of the file is still warned of."""
    import shutil

    small = tmp_path / "pairs.tsv"
    small.write_text("".join(reverse_run.joinpath("train.tsv").read_text().splitlines(keepends=True)[:64]))
    tiny = ("--max-steps", "1", "--units", "8", "--embedding-dim", "4", "--batch-size", "8")
    r = run_cli_in_process("train-seq2seq", small, "--val", small, "--out", tmp_path / "r", *tiny)
    assert r.returncode == 0, r.stderr
    assert ("data: --val is the training file itself: the validation figures say how well its pairs are learnt, "
            "not how well other sources would be translated") in r.stdout.splitlines() and "flattered" not in r.stdout
    shutil.copy(small, tmp_path / "copy.tsv")
    r = run_cli_in_process("train-seq2seq", small, "--val", tmp_path / "copy.tsv", "--out", tmp_path / "r2", *tiny)
    assert r.returncode == 0 and "the validation figures are flattered by them" in r.stdout, r.stderr


def _greedy_by_hand(translator, source: str, max_len: int = 20) -> tuple[str, float]:
    """Argmax decoding written out step by step with the model's own encode/decode_step: the
    reference the beam decoder's beam=1 must reproduce."""
    from charseq.vocab import EOS, SPECIALS

    model, vocab = translator.model, translator.target_vocab
    memory, mask, states = model.encode(translator.encode([source])[0][None, :])
    token, ids, log_prob = np.array([BOS]), [], 0.0
    for _ in range(max_len):
        logits, states = model.decode_step(token, states, memory, mask)
        log_probs = np.asarray(tf.nn.log_softmax(logits[0])).astype(np.float64)
        log_probs[[i for i in range(len(SPECIALS)) if i != EOS]] = -np.inf  # as the decoder: never pad/unk/start
        best = int(np.argmax(log_probs))
        log_prob += log_probs[best]
        if best == EOS:
            break
        ids.append(best)
        token = np.array([best])
    return vocab.decode(ids), log_prob


def test_translate_precision(reverse_run):
    """--precision float32 decodes as the float32 model does; mixed_bfloat16 (bfloat16 products) keeps a
    trained model's outputs where the CPU has AVX512-BF16 and is refused in one line elsewhere."""
    run = reverse_run / "run"
    args = ("translate", "--model", run, "--beam", "3", "--n-best", "2", "abcd", "xyz")
    default = run_cli_in_process(*args)
    assert default.returncode == 0, default.stderr
    assert run_cli_in_process(*args, "--precision", "float32").stdout == default.stdout
    for beam in ("1", "3"):
        r = run_cli_in_process("translate", "--model", run, "--beam", beam, "--precision", "mixed_bfloat16", "abcd", "xyz")
        if not kernels.native_bf16():
            assert_clean_error(r, "--precision mixed_bfloat16", "AVX512-BF16")
            continue
        assert r.returncode == 0 and r.stdout.splitlines() == ["dcba", "zyx"], r.stderr
        assert Translator(run, "mixed_bfloat16").decoder.recurrence == "bfloat16"


def test_beam_one_is_greedy_and_beam_never_scores_below_greedy(reverse_run):
    translator = Translator(reverse_run / "run")
    sources = [s for s, _ in make_pairs("reverse", 40, seed=9, length=(2, 7))]  # longer than trained: mistakes
    beam1 = translator(sources, beam=1, length_penalty=0, max_len=20)
    beam5 = translator(sources, beam=5, length_penalty=0, max_len=20)
    for source, b1, b5 in zip(sources, beam1, beam5):
        text, log_prob = _greedy_by_hand(translator, source)
        assert b1[0][0] == text and b1[0][1] == pytest.approx(log_prob, abs=1e-4)
        assert b5[0][1] >= log_prob - 1e-4  # the best of the beam is at least as likely as the greedy output


def test_a_model_whose_scores_are_not_numbers_is_said_so(reverse_run):
    """Weights that diverged in training make every score nan: greedy decoding would emit padding to the
    end and beam search keep no hypothesis, so both said nothing at all."""
    translator = Translator(reverse_run / "run")
    translator.model.head.bias.assign(np.full(translator.model.head.bias.shape, np.nan, np.float32))
    for beam in (1, 3):
        with pytest.raises(CharseqError, match="scores for the next character are not numbers"):
            translator(["abcd"], beam=beam)


def test_a_source_decodes_the_same_alone_and_in_a_padded_batch(reverse_run):
    translator = Translator(reverse_run / "run")
    alone = translator(["ab"], beam=3, n_best=3)[0]
    batched = translator(["ab", "abcde", "zyxwv"], beam=3, n_best=3)[0]
    assert [h[0] for h in alone] == [h[0] for h in batched]
    np.testing.assert_allclose([h[1] for h in alone], [h[1] for h in batched], atol=1e-4)


@pytest.mark.slow
def test_attention_variants_and_reverse_source_build_and_train(tmp_path):
    pairs = make_pairs("sort", 200, seed=0, length=(2, 4))
    (tmp_path / "p.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs))
    for flags in (["--attention", "bahdanau", "--reverse-source", "--shared-vocab"], ["--attention", "none", "--cell", "gru"]):
        out = tmp_path / flags[1]
        r = run_cli("train-seq2seq", tmp_path / "p.tsv", "--out", out, "--max-steps", "3", "--units", "16",
                    "--embedding-dim", "8", "--batch-size", "32", *flags)
        assert r.returncode == 0, r.stderr
        r = run_cli("translate", "--model", out, "--beam", "2", "abc")
        assert r.returncode == 0 and r.stderr == "", r.stderr


# ----------------------------------------------------------------------------- bad input
def test_pairs_file_problems(tmp_path):
    (tmp_path / "p.tsv").write_text("ab\tba\nno tab here\ncd\tdc\n")
    with pytest.raises(CharseqError, match="line 2 has no tab"):
        read_pairs(tmp_path / "p.tsv")
    assert read_pairs(tmp_path / "p.tsv", skip_bad_rows=True).skipped == 1
    (tmp_path / "e.tsv").write_text("ab\tba\n\tdc\n")
    with pytest.raises(CharseqError, match="line 2 has an empty source"):
        read_pairs(tmp_path / "e.tsv")
    (tmp_path / "long.tsv").write_text("ab\tba\nabcdefgh\thgfedcba\n")
    with pytest.raises(CharseqError, match="line 2.*--max-input-len 5"):
        read_pairs(tmp_path / "long.tsv", max_input_len=5)
    assert read_pairs(tmp_path / "long.tsv", max_input_len=5, skip_long=True).too_long == 1


def test_a_file_with_no_tab_is_said_to_be_no_file_of_pairs(tmp_path):
    """A CSV not named .csv or a file of sources alone was refused at its line 1 with advice,
    --skip-bad-rows, that skipped every line and then found nothing to train on."""
    (tmp_path / "pairs.txt").write_text("source,target\n3 March 2021,2021-03-03\n")
    (tmp_path / "sources.txt").write_text("3 March 2021\n4 April 2020\n")
    for skip in ((), ("--skip-bad-rows",)):
        r = run_cli_in_process("train-seq2seq", tmp_path / "pairs.txt", "--out", tmp_path / "r", *skip)
        assert_clean_error(r, "pairs.txt has no tab on any line: a file of pairs holds one source<TAB>target pair "
                           "per line; if it is CSV (separated by commas), read it from a file whose name ends in .csv")
        assert "--skip-bad-rows" not in r.stderr and not (tmp_path / "r").exists()
    r = run_cli_in_process("train-seq2seq", tmp_path / "sources.txt", "--out", tmp_path / "r")
    assert_clean_error(r, "sources.txt has no tab on any line: a file of pairs holds one source<TAB>target pair per line")
    assert "CSV" not in r.stderr


def test_a_first_line_naming_the_columns_is_a_header_not_a_pair(tmp_path):
    """A pairs file exported with a header (source<TAB>target, pandas' input,output) was trained on
    with its header as one more pair; a first line of other words is still a pair."""
    rows = "3 March 2021\t2021-03-03\n4 May 2020\t2020-05-04\n"
    for header in ("source\ttarget", "Source Text\tTarget_Text", "input\toutput", "English\tFrench", "src\ttgt"):
        (tmp_path / "p.tsv").write_text(header + "\n" + rows)
        pairs = read_pairs(tmp_path / "p.tsv")
        assert pairs.sources == ["3 March 2021", "4 May 2020"] and pairs.header == header.split("\t"), header
        assert read_pairs(tmp_path / "p.tsv", header=False).sources[0] == header.split("\t")[0]
    for first in ("es\tit", "in\tout", "text\ttext", "source\t2021-03-03"):  # German es is it; one a copy
        (tmp_path / "p.tsv").write_text(first + "\n" + rows)
        pairs = read_pairs(tmp_path / "p.tsv")
        assert pairs.header is None and pairs.sources[0] == first.split("\t")[0], first


def test_a_csv_file_of_pairs_is_read_as_csv(tmp_path):
    """A .csv of pairs was refused, to be saved as TSV; it is read as CSV, quotes and all, as a
    classifier's is, and a .csv holding tabs is read as the TSV it is."""
    (tmp_path / "p.csv").write_text('source,target\n"Smith, John","John Smith"\n"a ""b""",c\n\n', encoding="utf-8")
    pairs = read_pairs(tmp_path / "p.csv")
    assert (pairs.sources, pairs.targets, pairs.header) == (["Smith, John", 'a "b"'], ["John Smith", "c"],
                                                            ["source", "target"])
    (tmp_path / "tabbed.csv").write_text("a,b\tc\n")
    tabbed = read_pairs(tmp_path / "tabbed.csv")
    assert (tabbed.sources, tabbed.targets) == (["a,b"], ["c"])
    (tmp_path / "bad.csv").write_text("ab,ba\nab,ba,x\nabc\n")
    with pytest.raises(CharseqError, match="bad.csv line 2 has 3 fields, not 2"):
        read_pairs(tmp_path / "bad.csv")
    assert read_pairs(tmp_path / "bad.csv", skip_bad_rows=True).skipped == 2
    (tmp_path / "quoted.tsv").write_text('"a\tb"\tab\ncd\tdc\n')  # a TSV does not quote: said so, with what does
    with pytest.raises(CharseqError, match="quoted.tsv line 1 has 2 tabs, not 1; quotes do not hold a tab in a TSV, "
                                           "which is read as written: save pairs that need quoting as a .csv"):
        read_pairs(tmp_path / "quoted.tsv")
    (tmp_path / "quoted.csv").write_text('cd,dc\n"a\tb",ab\n')
    assert read_pairs(tmp_path / "quoted.csv").sources == ["cd", "a\tb"]
    (tmp_path / "one.csv").write_text("ab\ncd\n")
    with pytest.raises(CharseqError, match="one.csv has no comma on any line"):
        read_pairs(tmp_path / "one.csv")


def test_make_pairs_writes_a_csv_for_a_csv_name(tmp_path):
    """make-pairs --out dates.csv wrote tab-separated lines under a .csv name; it writes CSV, quoted
    where a date holds a comma, and the pairs read back are the ones made."""
    r = run_cli_in_process("make-pairs", "dates", "--n", "50", "--out", tmp_path / "dates.csv")
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "dates.csv").read_text()
    assert "\t" not in text and re.search(r'^"[A-Za-z]+ \d+, \d{4}",\d{4}-\d\d-\d\d$', text, re.M), text[:200]
    pairs = read_pairs(tmp_path / "dates.csv")
    assert list(zip(pairs.sources, pairs.targets)) == make_pairs("dates", 50)


def test_train_and_evaluate_read_a_csv_with_a_header(reverse_run, tmp_path):
    """train-seq2seq says the header it did not train on and records it, so the run's validation
    pairs are found again as training found them; evaluate scores the same file's pairs alone."""
    pairs = make_pairs("reverse", 60, seed=1, length=(2, 5))
    (tmp_path / "p.csv").write_text("source,target\n" + "".join(f"{s},{t}\n" for s, t in pairs))
    r = run_cli_in_process("train-seq2seq", tmp_path / "p.csv", "--out", tmp_path / "r", "--max-steps", "2",
                           "--units", "8", "--embedding-dim", "8", "--batch-size", "8")
    assert r.returncode == 0, r.stderr
    assert "data: line 1 of" in r.stdout and "'source' and 'target', names the columns: read as a header" in r.stdout
    assert "data: 54 training and 6 validation pairs" in r.stdout, r.stdout
    assert json.loads((tmp_path / "r" / "config.json").read_text())["data"]["header"] is True
    r = run_cli_in_process("evaluate", "--model", reverse_run / "run", tmp_path / "p.csv", "--json")
    report = json.loads(r.stdout)
    assert report["examples"] == 60 and "unknown_sources" not in report and "unknown_targets" not in report, report


def test_make_pairs_refuses_options_its_task_does_not_read(tmp_path):
    """make-pairs dates --digits 5 wrote the same dates as without it, and said nothing."""
    out = tmp_path / "p.tsv"
    for task, option, value, users in [("dates", "--digits", "5", "addition only"),
                                       ("sort", "--digits", "2", "addition only"),
                                       ("addition", "--max-length", "4", "reverse and sort only"),
                                       ("dates", "--min-length", "2", "reverse and sort only")]:
        assert_clean_error(run_cli_in_process("make-pairs", task, option, value, "--n", "5", "--out", out),
                           f"{option} applies to {users}, not {task}")
        assert not out.exists()
    for task, option, value in [("addition", "--digits", "2"), ("reverse", "--max-length", "4"), ("sort", "--min-length", "2")]:
        r = run_cli_in_process("make-pairs", task, option, value, "--n", "5", "--out", out, "--force")
        assert r.returncode == 0, r.stderr


def test_make_pairs_out_dash_writes_to_standard_output(tmp_path, monkeypatch):
    """--out - wrote a file named "-", where a click user pipes the pairs on, as --input - reads them."""
    monkeypatch.chdir(tmp_path)
    r = run_cli_in_process("make-pairs", "dates", "--n", "3", "--seed", "4", "--out", "-")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "".join(f"{s}\t{t}\n" for s, t in make_pairs("dates", 3, seed=4))  # the pairs alone
    assert r.stderr == "wrote 3 dates pairs to standard output\n"
    assert list(tmp_path.iterdir()) == []


def test_cli_bad_input_is_one_line(tmp_path, reverse_run, trained_run):
    (tmp_path / "p.tsv").write_text("ab\tba\nno tab here\n")
    assert_clean_error(run_cli_in_process("train-seq2seq", tmp_path / "p.tsv", "--out", tmp_path / "r"), "line 2", "tab")
    r = run_cli_in_process("train-seq2seq", tmp_path / "p.tsv", "--out", tmp_path / "r", "--skip-bad-rows", "--max-steps", "1",
                           "--units", "8", "--embedding-dim", "4", "--val", tmp_path / "p.tsv")
    assert r.returncode == 0 and "skipped 1 bad line of" in r.stdout, r.stderr
    run = reverse_run / "run"
    # evaluate --skip-bad-rows skips and counts, as the classifier's does (it said nothing of them).
    r = run_cli_in_process("evaluate", "--model", run, tmp_path / "p.tsv", "--skip-bad-rows")
    assert r.returncode == 0 and "on 1 pair (beam 1, 1 bad row skipped)" in r.stdout, (r.stdout, r.stderr)
    r = run_cli_in_process("evaluate", "--model", run, tmp_path / "p.tsv", "--skip-bad-rows", "--json")
    assert json.loads(r.stdout)["skipped_rows"] == 1
    assert_clean_error(run_cli_in_process("translate", "--model", run, "--beam", "0", "abc"), "--beam")
    # More hypotheses than the beam keeps: the width that gives them is said (greedy, the default, has one).
    assert_clean_error(run_cli_in_process("translate", "--model", run, "--n-best", "3", "abc"),
                       "--n-best must be between 1 and --beam (1), not 3 (use --beam 3)")
    # A length penalty ranks beam search's hypotheses: greedy decoding would silently ignore it.
    assert_clean_error(run_cli_in_process("translate", "--model", run, "--length-penalty", "0.6", "abc"),
                       "--length-penalty", "--beam N")
    assert run_cli_in_process("translate", "--model", run, "--length-penalty", "0.6", "--beam", "2", "abc").returncode == 0
    assert_clean_error(run_cli_in_process("translate", "--model", run, "ab1"), "'1'", "--unknown unk")
    assert run_cli_in_process("translate", "--model", run, "--unknown", "unk", "ab1").returncode == 0
    assert_clean_error(run_cli_in_process("translate", "--model", trained_run, "abc"), "holds a language model, not an encoder-decoder")
    assert_clean_error(run_cli_in_process("make-pairs", "addition", "--n", "0", "--out", tmp_path / "x.tsv"), "--n")
    (tmp_path / "exists.tsv").write_text("keep me\n")
    assert_clean_error(run_cli_in_process("make-pairs", "sort", "--out", tmp_path / "exists.tsv"), "already exists")
    assert (tmp_path / "exists.tsv").read_text() == "keep me\n"
    (tmp_path / "folder").mkdir()  # no --force can replace a folder: not advised
    r = run_cli_in_process("make-pairs", "sort", "--out", tmp_path / "folder")
    assert_clean_error(r, f"--out {tmp_path / 'folder'} is a directory; give a file name")
    assert "--force" not in r.stderr
