"""Which generation settings each way of decoding uses.

Sampling uses them all. Greedy decoding draws nothing: it always takes the most likely character,
so a temperature, top-k, top-p, seed or several samples would change nothing. Beam search samples
nothing at all. A setting asked for where it does nothing is refused rather than ignored, since the
text would not be what it asked for; `charseq generate` and the studio's `/api/generate` both apply
this rule, so a request the command line refuses is refused by the studio too.
"""

from __future__ import annotations

from collections.abc import Iterable

from charseq.errors import CharseqError, flag

SAMPLING_SETTINGS = ("temperature", "top_k", "top_p", "greedy", "seed", "num_samples")


def refuse_settings_the_decoding_ignores(asked: Iterable[str], beam_search: bool, greedy: bool) -> None:
    """Raise CharseqError if a sampling setting in `asked` (parameter names, as in SAMPLING_SETTINGS;
    num_samples only when above 1) does nothing with beam search, or with greedy decoding."""
    sampling = sorted(set(asked) & set(SAMPLING_SETTINGS))
    if beam_search and sampling:
        raise CharseqError(f"{_listed(sampling)} not apply to beam search, which finds the most likely "
                           "continuations instead of sampling", "--n-best N for several of them")
    drawing = [name for name in sampling if name != "greedy"]
    if greedy and drawing:
        raise CharseqError(f"{_listed(drawing)} not apply with --greedy, which always takes the most likely "
                           "character instead of drawing one")


def _listed(names: list[str]) -> str:
    """Settings by their option names, as a sentence's subject: "--seed and --top-k do"."""
    flags = [flag(name) for name in names]
    return " and ".join(filter(None, [", ".join(flags[:-1]), flags[-1]])) + (" does" if len(flags) == 1 else " do")
