"""A train function given a setting it does not have names it and what was probably meant: a near
name, the setting a keyword of Keras' `fit` is here, or for `verbose` and `callbacks`, what a train
function does instead. Nothing is written."""

import pytest

import charseq
from charseq.errors import CharseqError


@pytest.mark.parametrize("settings, said", [
    ({"unitz": 8}, "unknown settings: unitz (did you mean units?)"),
    ({"verbose": 0}, "unknown settings: verbose (a train function reports through log=; "
                     "log=lambda line: None trains without a word)"),
    ({"layer": 1, "xyzzy": 2}, "unknown settings: layer, xyzzy (layer: did you mean layers?)"),
    ({"learning_rate": 0.01}, "unknown settings: learning_rate (did you mean lr?)"),
    ({"validation_split": 0.1}, "unknown settings: validation_split (did you mean val_fraction?)"),
    ({"callbacks": []}, "unknown settings: callbacks (a train function runs its own loop, with early stopping "
                        "(patience=), checkpoints and TensorBoard logs; for Keras callbacks, train the model "
                        "with Keras' fit)"),
])
def test_an_unknown_setting_says_what_was_meant(settings, said, files, tmp_path):
    for train, data in ((charseq.train_lm, files / "corpus.txt"), (charseq.train_seq2seq, files / "pairs.tsv")):
        with pytest.raises(CharseqError) as e:
            train(data, tmp_path / "run", **settings)
        assert str(e.value) == said
        assert not (tmp_path / "run").exists()


def test_keras_validation_data_is_the_val_file_where_a_head_takes_one(files, tmp_path):
    with pytest.raises(CharseqError, match=r"^unknown settings: validation_data \(did you mean val\?\)$"):
        charseq.train_seq2seq(files / "pairs.tsv", tmp_path / "run", validation_data=files / "pairs.tsv")
    with pytest.raises(CharseqError, match=r"^unknown settings: validation_data$"):  # a language model has no val file
        charseq.train_lm(files / "corpus.txt", tmp_path / "run", validation_data=files / "corpus.txt")
