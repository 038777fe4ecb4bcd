"""charseq studio: a local web UI over trained runs (`charseq serve RUNS...`).

The web layer is thin: :mod:`charseq.studio.runs` keeps the table of served runs (rescanned
every few seconds) and caches loaded models; :mod:`charseq.studio.limits` parses and bounds request
bodies; :mod:`charseq.studio.app` maps each route to one library call
(:mod:`charseq.heads.lm.beam`, :mod:`charseq.heads.lm.inspect`, :mod:`charseq.heads.classifier.inspect`,
:mod:`charseq.heads.seq2seq.inspect`). The page in ``static/`` uses only the JSON API.
"""
