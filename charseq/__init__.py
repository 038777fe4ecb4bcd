"""charseq: character-level sequence models on one shared recurrent backbone (TensorFlow 2 / Keras 3).

The library is what the CLI calls; everything is usable from Python::

    from charseq import dataset_path, train_lm, load_lm, generate
    run = train_lm(dataset_path("poems"), out="runs/poems", time_budget=2)   # a corpus that ships with charseq
    model, vocab, config = load_lm("runs/poems")
    print(generate(model, vocab, prompt="春风", length=100))

Each head (language model, classifier, encoder-decoder) is a package in charseq/heads/, listed in
the registry charseq.heads; the pieces they share (vocab, data, backbone, losses, train, runs) sit
beside it.
"""

__version__ = "0.1.0"

_API = {
    "CharVocab": "charseq.vocab", "SentencePieceVocab": "charseq.vocab", "load_vocab": "charseq.vocab",
    "RecurrentBackbone": "charseq.backbone", "BackboneConfig": "charseq.settings",
    "LanguageModel": "charseq.heads.lm.model",
    "TrainConfig": "charseq.settings", "RunDir": "charseq.runs", "CharseqError": "charseq.errors",
    "train_lm": "charseq.heads.lm.run", "load_lm": "charseq.heads.lm.run", "evaluate_lm": "charseq.heads.lm.run",
    "generate": "charseq.heads.lm.inference", "beam_search": "charseq.heads.lm.beam",
    "SequenceClassifier": "charseq.heads.classifier.model", "train_mnist": "charseq.heads.classifier.run",
    "train_classifier": "charseq.heads.classifier.run", "load_classifier": "charseq.heads.classifier.run",
    "classify": "charseq.heads.classifier.run", "classify_images": "charseq.heads.classifier.run",
    "evaluate_classifier": "charseq.heads.classifier.run",
    "Seq2Seq": "charseq.heads.seq2seq.model", "train_seq2seq": "charseq.heads.seq2seq.run", "load_seq2seq": "charseq.heads.seq2seq.run",
    "Translator": "charseq.heads.seq2seq.run", "translate": "charseq.heads.seq2seq.run",
    "evaluate_seq2seq": "charseq.heads.seq2seq.run", "make_pairs": "charseq.data.pairs", "read_pairs": "charseq.data.pairs",
    "Generator": "charseq.heads.lm.inference", "sample_on_one_op_thread": "charseq.heads.lm.inference",
    "plot_runs": "charseq.plot", "run_grid": "charseq.grid",
    "export_saved_model": "charseq.export",
    "get_dataset": "charseq.data.datasets", "dataset_path": "charseq.data.datasets", "list_datasets": "charseq.data.datasets",
    "serve": "charseq.studio.app", "create_app": "charseq.studio.app",
}


def __getattr__(name):
    # Imported on first use: `import charseq` (and `charseq --help`) stays fast, TensorFlow loads
    # only when a model is touched.
    if name in _API:
        import importlib
        import inspect

        obj = getattr(importlib.import_module(_API[name]), name)
        if inspect.isfunction(obj):  # the public boundary: arguments checked, wrong types named (charseq.settings.checked)
            from charseq.settings import checked

            obj = checked(obj)
        globals()[name] = obj
        return obj
    raise AttributeError(f"module 'charseq' has no attribute {name!r}")


__all__ = sorted(_API)
