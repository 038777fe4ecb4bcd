"""Smaller promises: an empty TEXT or SOURCE is refused, the exported generate takes one prompt, --port is a
port, a CSV header is read without guessing, --debug works wherever it is written, a command
given another head's run names both heads as people do, a command's start does not load
matplotlib, and the run directory a train command ends with pastes into a shell as it is."""

import shlex

import pytest

from helpers import assert_clean_error, run_cli_in_process, tiny_flags


@pytest.mark.parametrize("texts", [[""], ["   "], ["good film", ""]])
def test_classify_refuses_an_empty_text_argument(finished, texts):
    r = run_cli_in_process("classify", "--model", finished["train-classifier"], *texts)
    assert_clean_error(r, "empty text", f"argument {texts.index(next(t for t in texts if not t.strip())) + 1}")
    assert r.stdout == ""


@pytest.mark.parametrize("sources", [[""], ["ab", ""]])
def test_translate_refuses_an_empty_source_argument(finished, sources):
    r = run_cli_in_process("translate", "--model", finished["train-seq2seq"], *sources)
    assert_clean_error(r, "empty source", f"argument {sources.index('') + 1}")
    assert r.stdout == ""


def test_classify_keeps_a_blank_output_line_for_a_blank_input_line(finished, tmp_path):
    (tmp_path / "in.txt").write_text("good film\n\nbad film\n")
    r = run_cli_in_process("classify", "--model", finished["train-classifier"], "--input", tmp_path / "in.txt")
    assert r.returncode == 0 and r.stdout.split("\n")[1] == "", r.stdout


def test_another_heads_run_is_named_as_people_name_it(finished):
    # (translate and classify given a language model: tests/seq2seq, tests/classifier)
    r = run_cli_in_process("generate", "--model", finished["train-seq2seq"])
    assert_clean_error(r, "holds an encoder-decoder, not a language model")


def test_the_exported_generate_refuses_two_prompts(finished, tmp_path):
    tf = pytest.importorskip("tensorflow")
    from charseq.export import export_saved_model

    export_saved_model(finished["train-lm"], tmp_path / "export")
    generate = tf.saved_model.load(str(tmp_path / "export")).signatures["generate"]
    args = dict(prompt=tf.constant("a"), length=tf.constant(3), temperature=tf.constant(1.0), seed=tf.constant(1))
    assert generate(**args)["text"].shape == ()
    for name, many in [("prompt", tf.constant(["a", "b"])), ("length", tf.constant([3, 4])),
                       ("temperature", tf.constant([1.0, 0.5])), ("seed", tf.constant([[1]]))]:
        with pytest.raises(tf.errors.InvalidArgumentError, match=f"generate: {name} must be one"):
            generate(**{**args, name: many})


@pytest.mark.parametrize("port", ["99999", "-1", "65536"])
def test_port_out_of_range_is_a_usage_error_naming_it(tmp_path, port):
    r = run_cli_in_process("serve", tmp_path, "--port", port)
    assert_clean_error(r, "--port", port, "0 to 65535")
    assert r.returncode == 2 and "internal error" not in r.stderr


def test_a_missing_label_column_is_said_in_english(tmp_path, files):
    (tmp_path / "x.csv").write_text("text,category\nsome text,a\nother text,b\n")
    r = run_cli_in_process("train-classifier", tmp_path / "x.csv", "--out", tmp_path / "run", "--max-steps", "1")
    assert_clean_error(r, "has no label column (label)", "--label-column")
    assert "has no a " not in r.stderr


@pytest.mark.parametrize("first_line", ["", ",", "\t"])
def test_a_file_without_a_header_says_so(tmp_path, first_line):
    (tmp_path / "x.csv").write_text(first_line + "\nsome text,a\nother text,b\n")
    r = run_cli_in_process("train-classifier", tmp_path / "x.csv", "--out", tmp_path / "run", "--max-steps", "1")
    assert_clean_error(r, "line 1 is empty", "header naming its columns")
    assert not (tmp_path / "run").exists()


def test_evaluate_names_the_column_the_model_was_trained_on(tmp_path):
    """A file lacking the text column a run was trained on (with --text-column) is said as a column, not as
    an option evaluate was not given."""
    rows = "".join(f"words {i},{i % 2}\n" for i in range(40))
    (tmp_path / "train.csv").write_text("review,label\n" + rows)
    (tmp_path / "test.csv").write_text("text,label\n" + rows)
    r = run_cli_in_process("train-classifier", tmp_path / "train.csv", "--text-column", "review", "--out",
                           tmp_path / "run", "--max-steps", "1", "--units", "16", "--precision", "float32")
    assert r.returncode == 0, r.stderr
    r = run_cli_in_process("evaluate", "--model", tmp_path / "run", tmp_path / "test.csv")
    assert_clean_error(r, "has no text column 'review'; its columns are: text, label", "--text-column")
    assert "no --text-column" not in r.stderr
    r = run_cli_in_process("evaluate", "--model", tmp_path / "run", tmp_path / "test.csv", "--text-column", "text")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("header,column", [("text,text,label", "text"), ("text,label,Label", "label"),
                                           ("Sentence,sentence,label", "sentence")])
def test_a_header_naming_the_column_read_twice_is_refused(tmp_path, header, column):
    (tmp_path / "x.csv").write_text(header + "\n" + "\n".join(f"a{i},b{i},c{i % 2}" for i in range(20)) + "\n")
    r = run_cli_in_process("train-classifier", tmp_path / "x.csv", "--out", tmp_path / "run", "--max-steps", "1")
    assert_clean_error(r, f"2 columns named '{header.split(',')[[h.lower() for h in header.split(',')].index(column)]}'",
                       "rename")
    assert not (tmp_path / "run").exists()


def test_debug_is_accepted_after_the_command(tmp_path):
    for args in (["--debug", "generate", "--model", tmp_path / "none"], ["generate", "--model", tmp_path / "none", "--debug"]):
        r = run_cli_in_process(*args)
        assert r.returncode == 1 and "Traceback" in r.stderr and "does not exist" in r.stderr.splitlines()[-1], r.stderr
    r = run_cli_in_process("generate", "--model", tmp_path / "none")
    assert_clean_error(r, "does not exist")
    r = run_cli_in_process("generate", "--model", tmp_path / "none", "--prompt", "--", "--debug")  # after --: not an option
    assert_clean_error(r)  # an error without a traceback: --debug was not taken


def test_a_command_loads_tensorflow_without_matplotlib_and_can_still_plot():
    """Keras imports matplotlib.pyplot as it loads (0.45 s of every command's start); the commands'
    TensorFlow import holds that off, and matplotlib imports normally afterwards."""
    import subprocess
    import sys

    pytest.importorskip("matplotlib")
    script = ("import sys\nfrom charseq.options import import_tensorflow\nimport_tensorflow()\n"
              "print('matplotlib' in sys.modules, 'tensorflow' in sys.modules)\n"
              "from matplotlib.figure import Figure\nprint(Figure().__class__.__name__)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.split("\n")[:2] == ["False True", "Figure"], done.stderr[-2000:]


def test_the_last_line_of_training_quotes_its_run_directory_for_a_shell(tmp_path, corpus_file):
    out = tmp_path / "poems, Anne's run"
    r = run_cli_in_process("train-lm", corpus_file, "--out", out, "--max-steps", "2", *tiny_flags())
    last = r.stdout.strip().splitlines()[-1]
    assert r.returncode == 0 and last.startswith("done: run directory "), r.stdout + r.stderr
    assert shlex.split(last.removeprefix("done: run directory ")) == [str(out)] and (out / "best.npz").exists()


def test_evaluate_prints_a_classifier_s_confusion_matrix(finished, files):
    r = run_cli_in_process("evaluate", "--model", finished["train-classifier"], files / "reviews.tsv")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    examples = int(lines[0].split(" on ")[1].split()[0].replace(",", ""))
    table = lines[lines.index("confusion matrix:") + 1:]
    assert table[0].split()[-2:] == ["neg", "pos"] and [row.split()[0] for row in table[1:]] == ["neg", "pos"]
    assert sum(int(n) for row in table[1:] for n in row.split()[1:]) == examples
    assert all("recall" in line and "precision" in line for line in lines[1:3])
