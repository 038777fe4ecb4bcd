"""charseq studio: a local web UI over trained runs (`charseq serve RUNS...`).

The web layer is thin: :mod:`charseq.studio.runs` keeps the table of served runs (rescanned
every few seconds) and caches loaded models; :mod:`charseq.studio.app` holds the routes every run
shares and the safety checks; :mod:`charseq.studio.views` plugs in each head's view
(``charseq/heads/<head>/studio.py``: its tabs and its routes, each calling one library function).
Request bodies are parsed and bounded by :mod:`charseq.web`, which the heads' views use too (they
never import the studio). The page uses only the JSON API.
"""
