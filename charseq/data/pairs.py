"""Sequence pairs for the encoder-decoder: a TSV and CSV reader and synthetic tasks that need no download.

    pairs = read_pairs("add.tsv")                       # source<TAB>target per line (source,target in a .csv)
    rows = make_pairs("addition", n=50000, seed=0, digits=3)

The synthetic tasks are the classic seq2seq demos: addition of two numbers (`12+345` → `357`),
string reversal, sorting the characters of a string, and date normalisation from several
human formats to ISO 8601 (`March 7, 1994` → `1994-03-07`). Each is a pure function of its
seed, so demos and tests are reproducible.
"""

from __future__ import annotations

import csv
import datetime
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charseq.data.labeled import long_fields
from charseq.errors import CharseqError
from charseq.files import input_name, read_text
from charseq.settings import PAIR_TASKS as TASKS, check_seed


@dataclass
class Pairs:
    sources: list[str]
    targets: list[str]
    skipped: int = 0  # bad rows skipped (--skip-bad-rows)
    too_long: int = 0  # sources over --max-input-len skipped
    header: list[str] | None = None  # the first line's two fields, when read as the names of the columns


# Words a first line names its columns with (`source<TAB>target`, `input,output`, `English<TAB>French`), read
# a word at a time (`source_text`). A pair of two such words is a header, not a pair anyone trains on. Short
# words a real pair could hold (`in`, `to`, `x`) are not here, nor words of other languages (German `es`
# → `it` is a pair).
COLUMN_WORDS = frozenset("""
    source target src tgt trg input output inputs outputs text texts sentence sentences
    question answer prompt completion response translation original reference label string sequence seq
    lang language english chinese mandarin french german spanish italian portuguese russian japanese korean
    arabic hindi dutch
""".split())


def names_columns(fields: list[str]) -> bool:
    """Whether a line's two fields are names of columns (`source`, `target`), not a pair to learn."""
    words = [re.split(r"[\s_\-.]+", f.strip().lower()) for f in fields]
    return (len(fields) == 2 and fields[0].strip().lower() != fields[1].strip().lower()
            and all(w and all(part in COLUMN_WORDS for part in w) for w in words))


def is_csv(path: str | Path, text: str) -> bool:
    """A file of pairs is read as CSV when its name ends in .csv and its first line has no tab (a
    TSV saved under a .csv name is read as the TSV it is)."""
    return Path(str(path)).suffix.lower() == ".csv" and "\t" not in text.split("\n", 1)[0]


def read_pairs(path: str | Path, skip_bad_rows: bool = False, max_input_len: int | None = None,
               skip_long: bool = False, encoding: str = "utf-8", errors: str = "strict",
               header: bool | None = None) -> Pairs:
    """`source<TAB>target` lines, or `source,target` rows of a .csv file (quoted as CSV quotes a
    field holding a comma). A line without exactly one tab (two fields), or with an empty side, is
    an error naming its line unless `skip_bad_rows`; a source longer than `max_input_len` is an error
    unless `skip_long`. Blank lines are ignored. A first line that names its two columns
    (`source<TAB>target`, `input,output`) is a header and not read as a pair; `header` True reads the
    first line as a header whatever it holds, False as a pair. The file at `path` is read in `encoding`,
    with `errors` ("strict", "replace", "ignore") for bytes that do not decode."""
    if max_input_len is not None and max_input_len < 1:
        raise CharseqError(f"--max-input-len must be at least 1, not {max_input_len}")
    text, name = read_text(path, encoding, errors), input_name(path)  # `-` is standard input
    csv_file = is_csv(path, text)
    rows = _csv_rows(text, name) if csv_file else _tsv_rows(text)
    separator = "comma" if csv_file else "tab"
    separated = any(len(fields) > 1 for _, fields in rows)  # once: not scanned again for each bad line
    head = None
    if rows and (header or (header is None and names_columns(rows[0][1]))):
        head, rows = rows[0][1], rows[1:]
    sources, targets, skipped, too_long = [], [], 0, 0
    for number, fields in rows:
        problem = None
        if len(fields) != 2:
            problem = (f"has no {separator} between source and target" if len(fields) == 1
                       else f"has {len(fields)} fields, not 2" if csv_file else f"has {len(fields) - 1} tabs, not 1")
            if len(fields) > 2 and not csv_file and '"' in "".join(fields):
                # Quotes hold a separator in CSV only: a TSV is read as written, quotes and all.
                problem += "; quotes do not hold a tab in a TSV, which is read as written: save pairs that need " \
                           "quoting as a .csv"
        elif not fields[0].strip():
            problem = "has an empty source"
        elif not fields[1].strip():
            problem = "has an empty target"
        if len(fields) == 1 and not separated:  # not one stray line: no line has a separator
            raise CharseqError(untabbed(name, fields[0]) if not csv_file else
                               f"{name} has no comma on any line: a CSV file of pairs holds one source,target "
                               "pair per line")
        if problem:
            if not skip_bad_rows:
                raise CharseqError(f"{name} line {number} {problem}", "--skip-bad-rows to skip such lines")
            skipped += 1
            continue
        source, target = fields
        if max_input_len is not None and len(source) > max_input_len:
            if not skip_long:
                raise CharseqError(f"{name} line {number}: the source has {len(source)} characters, more than "
                                   f"--max-input-len {max_input_len}", "--skip-long to skip such lines")
            too_long += 1
            continue
        sources.append(source)
        targets.append(target)
    if not sources:
        raise CharseqError(f"{name} has no usable source{'<TAB>' if not csv_file else ','}target lines")
    return Pairs(sources, targets, skipped, too_long, head)


def _tsv_rows(text: str) -> list[tuple[int, list[str]]]:
    """(line number, fields) of each line that is not blank, split at its tabs."""
    return [(number, line.rstrip("\r").split("\t")) for number, line in enumerate(text.split("\n"), start=1)
            if line.strip()]


def _csv_rows(text: str, name) -> list[tuple[int, list[str]]]:
    """(line number where it starts, fields) of each CSV row with a field that is not blank."""
    reader, rows = csv.reader(io.StringIO(text)), []
    with long_fields():  # a long source is the user's to have: --max-input-len bounds it
        while True:
            number = reader.line_num + 1  # where this row starts (a quoted field may span lines)
            try:
                fields = next(reader)
            except StopIteration:
                return rows
            except csv.Error as e:
                raise CharseqError(f"{name} line {number}: {e}" + (
                    " (a quote opened there is never closed)" if "end of data" in str(e) else "")) from None
            if any(field.strip() for field in fields):
                rows.append((number, fields))


def pairs_text(pairs: list[tuple[str, str]], path: str | Path) -> str:
    """`pairs` as a file at `path` holds them, for `read_pairs` to read back: `source,target` rows,
    quoted where a field holds a comma (`"March 7, 1994",1994-03-07`), for a .csv; else one
    `source<TAB>target` line each."""
    if Path(str(path)).suffix.lower() != ".csv":
        return "".join(f"{source}\t{target}\n" for source, target in pairs)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(pairs)
    return out.getvalue()


def untabbed(path, line: str) -> str:
    """Why a file with no tab on any line is no file of pairs (--skip-bad-rows would skip it all), and,
    for one that looks like CSV, what to do."""
    csv_like = "," in line
    return (f"{path} has no tab on any line: a file of pairs holds one source<TAB>target pair per line"
            + ("; if it is CSV (separated by commas), read it from a file whose name ends in .csv" if csv_like else ""))


# ----------------------------------------------------------------------------- synthetic tasks
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]


def _date_text(day: datetime.date, style: int) -> str:
    """One of several human ways of writing a date."""
    month = MONTHS[day.month - 1]
    return [
        f"{month} {day.day}, {day.year}",              # March 7, 1994
        f"{day.day} {month} {day.year}",               # 7 March 1994
        f"{month[:3]} {day.day} {day.year}",           # Mar 7 1994
        f"{day.day:02d}/{day.month:02d}/{day.year}",   # 07/03/1994 (day first)
        f"{day.day}.{day.month}.{day.year}",           # 7.3.1994
        f"{day.strftime('%A')}, {month} {day.day}, {day.year}",  # Monday, March 7, 1994
        f"{day.day} {month[:3].lower()} {day.year % 100:02d}",  # 7 mar 94 (two-digit year: 19xx/20xx below)
        f"{month.upper()} {day.day} {day.year}",       # MARCH 7 1994
    ][style]


# The settings each task reads; make-pairs refuses the others rather than write pairs they had no part in.
TASK_SETTINGS = {"addition": ("digits",), "reverse": ("length",), "sort": ("length",), "dates": ()}


def check_task_settings(task: str, given: dict[str, str]) -> None:
    """Refuse the settings `task` does not read; `given` maps each one given to its option's name."""
    for setting, option in given.items():
        if setting not in TASK_SETTINGS.get(task, (setting,)):
            users = [t for t, settings in TASK_SETTINGS.items() if setting in settings]
            raise CharseqError(f"{option} applies to {' and '.join(users)} only, not {task}")


MAX_PAIRS = 10_000_000  # held in memory as Python strings: about 2 GB at this count


def distinct_pairs(task: str, digits: int, length: tuple[int, int]) -> int:
    """How many distinct sources the task can generate (a request for more could never finish)."""
    if task == "addition":
        return (10 ** digits) ** 2  # a and b each in [0, 10**digits)
    if task in ("reverse", "sort"):
        return sum(26 ** k for k in range(length[0], length[1] + 1))
    return 365 * 100 * 8  # days of the range drawn below, times the 8 human formats of _date_text


def make_pairs(task: str, n: int, seed: int = 0, digits: int = 3, length: tuple[int, int] = (3, 12)) -> list[tuple[str, str]]:
    """`n` distinct (source, target) pairs of a synthetic task, the same for the same `seed` (asking
    for more than the task has is an error saying how many it has).

    `task` is "addition" (`12+345` → `357`, numbers of up to `digits` digits), "reverse" (a string
    and its reverse), "sort" (a string and its characters sorted) or "dates" (a date written one of
    several ways, `March 7, 1994` say → `1994-03-07`); the strings of reverse and sort are between
    `length` (shortest, longest) characters long.

    Examples:
        >>> pairs = make_pairs("addition", 3, digits=2)
        >>> all(int(a) + int(b) == int(total) for (a, b), total in ((s.split("+"), t) for s, t in pairs))
        True
        >>> [s[::-1] == t for s, t in make_pairs("reverse", 2)]
        [True, True]
    """
    if task not in TASKS:
        raise CharseqError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if n < 1:
        raise CharseqError(f"--n must be at least 1, not {n}")
    check_seed(seed)
    if not 1 <= digits <= 18:
        raise CharseqError(f"--digits must be between 1 and 18, not {digits}")
    lo, hi = length
    if not 1 <= lo <= hi:
        raise CharseqError(f"--min-length and --max-length must satisfy 1 <= min <= max, not {lo} and {hi}")
    if n > MAX_PAIRS:
        raise CharseqError(f"--n {n:,} is more pairs than charseq writes at once (at most {MAX_PAIRS:,})")
    possible = distinct_pairs(task, digits, length)
    if n > possible:
        what = {"addition": f"addition with --digits {digits}", "dates": "dates"}.get(
            task, f"{task} with --min-length {lo} and --max-length {hi}")
        raise CharseqError(f"--n {n:,}: {what} has only {possible:,} distinct pairs; ask for at most that many")
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    seen: set[str] = set()
    pairs: list[tuple[str, str]] = []
    attempts = 0
    while len(pairs) < n and attempts < 20 * n + 1000:
        attempts += 1
        if task == "addition":
            # Each number has 1..digits digits, uniform in its length, so short sums are not rare.
            a, b = (int(rng.integers(0 if d == 1 else 10 ** (d - 1), 10 ** d))
                    for d in rng.integers(1, digits + 1, size=2))
            source, target = f"{a}+{b}", str(a + b)
        elif task in ("reverse", "sort"):
            word = "".join(rng.choice(letters, size=int(rng.integers(lo, hi + 1))))
            source, target = word, word[::-1] if task == "reverse" else "".join(sorted(word))
        else:
            day = datetime.date(1950, 1, 1) + datetime.timedelta(days=int(rng.integers(0, 365 * 100)))
            source, target = _date_text(day, int(rng.integers(0, 8))), day.isoformat()
        if source in seen:
            continue
        seen.add(source)
        pairs.append((source, target))
    return pairs
