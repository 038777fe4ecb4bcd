"""Labeled texts from a TSV or CSV file with a header row."""

from __future__ import annotations

import contextlib
import csv
import io
import re
from dataclasses import dataclass, replace
from pathlib import Path

from charseq.errors import CharseqError
from charseq.files import decoding, input_name, read_text
from charseq.sizing import counted

TEXT_COLUMNS = ("text", "sentence", "content", "review")
LABEL_COLUMNS = ("label",)
# How a JSON array or object (or JSON Lines) starts, told from a column name such as "[id]".
JSON_START = re.compile(r'\s*(\{\s*("|$)|\[\s*([\[{"\d\]-]|$))')
FIELD_LIMIT = 2**31 - 1  # characters in one field: the most a C long holds everywhere
# A field as CSV quotes one holding a quote ("a ""good"" film"), which pandas' to_csv(sep="\t") writes
# into a TSV: a TSV is read as written (GLUE's hold quotes of their own), so such a text is only said.
CSV_QUOTED = re.compile(r'"(?:[^"]|"")*""(?:[^"]|"")*"', re.S)


@dataclass
class LabeledTexts:
    texts: list[str]
    labels: list[str]
    skipped: int = 0
    quoted: int = 0  # texts of a TSV that look quoted as CSV quotes them (read as written all the same)

    def renamed(self, names: dict[str, str] | None) -> "LabeledTexts":
        """These rows with each label `names` names under its new name (--label-names: 0 as negative)."""
        return replace(self, labels=[names.get(label, label) for label in self.labels]) if names else self


def _pick(header: list[str], wanted: str | None, defaults: tuple[str, ...], what: str, path) -> int:
    lowered = [h.strip().lower() for h in header]
    names = (wanted,) if wanted else defaults
    for name in names:
        if name.lower() in lowered:
            found = [i for i, h in enumerate(lowered) if h == name.lower()]
            if len(found) > 1:  # which one would be read is not for charseq to guess
                raise CharseqError(f"{path} has {len(found)} columns named {header[found[0]].strip()!r} (columns "
                                   f"{' and '.join(str(i + 1) for i in found)}); rename all but one in its header")
            return found[0]
    sep = next((c for c in ";|" if c in header[0]), None) if len(header) == 1 else None
    if sep:  # a spreadsheet's export in a locale whose lists take semicolons: no column name helps
        raise CharseqError(f"{path} has a single column, {header[0].strip()!r}, which looks separated by {sep!r}; "
                           "charseq reads CSV (separated by commas) or TSV (by tabs): save the file as one of them")
    if JSON_START.match(header[0]):  # a JSON export: its keys are not columns, whatever is named
        raise CharseqError(f"{path} looks like JSON (it starts with {header[0].lstrip()[0]!r}); charseq reads labeled "
                           "texts from CSV or TSV with a header row naming the columns (such as text and label): "
                           "save the file as one of them")
    if len(header) == 1 and "," in header[0] and Path(path).suffix.lower() == ".tsv":
        # A CSV saved under a .tsv name: the name says tabs, so a comma splits nothing.
        raise CharseqError(f"{path} is read as TSV (separated by tabs), as its name says, but its header, "
                           f"{header[0].strip()!r}, is separated by commas: rename it to .csv")
    columns = [h.strip() for h in header]
    if not wanted and any(re.fullmatch(r"-?[0-9]+", h) for h in columns) and any(" " in h for h in columns):
        # A number beside words with spaces: a row of data (SST-2's layout without its header), and no
        # column name given would read its first row as data.
        raise CharseqError(f"{path} line 1 looks like a row of data, not a header ({', '.join(map(repr, columns))}); "
                           "a file of labeled texts starts with a header naming its columns (such as text and "
                           "label): add one")
    looked = f"{what} column {wanted!r}" if wanted else f"{what} column ({' or '.join(defaults)})"
    raise CharseqError(f"{path} has no {looked}; its columns are: {', '.join(header)}",
                       f"--{what}-column to name one")


def read_labeled(path: str | Path, text_column: str | None = None, label_column: str | None = None,
                 skip_bad_rows: bool = False, encoding: str = "utf-8", errors: str = "strict") -> LabeledTexts:
    """Texts and labels from `path` (`-`: standard input): tab-separated for .tsv (or a tab in the
    header), else CSV.

    A row with the wrong number of fields or an empty text is an error naming its line,
    unless `skip_bad_rows`, which skips it and counts it.
    """
    content = read_text(path, encoding, errors)
    path = input_name(path)  # as messages name it: `-` is standard input
    with long_fields():  # a long text is cut by --max-len, and training checks the memory it needs
        return _parse(content, path, text_column, label_column, skip_bad_rows)


@contextlib.contextmanager
def long_fields():
    """The csv module refuses a field over 131,072 characters by default: a long text (or source) is
    the user's to have, so the limit is lifted while a file is read, and put back after."""
    limit = csv.field_size_limit(FIELD_LIMIT)
    try:
        yield
    finally:
        csv.field_size_limit(limit)


def say_quoted(rows: LabeledTexts, path, log) -> None:
    """A warning, to `log`, of the texts of a TSV that look quoted as CSV quotes them."""
    if rows.quoted:
        log(f"warning: {counted(rows.quoted, 'text')} of {path} {'looks' if rows.quoted == 1 else 'look'} quoted "
            'as a CSV quotes them ("a ""good"" film"); a TSV is read as written, quotes and all: write it '
            "without quoting (pandas: quoting=csv.QUOTE_NONE), or comma-separated")


def picked_columns(path: str | Path, text_column: str | None = None, label_column: str | None = None,
                   encoding: str = "utf-8") -> tuple[int, int]:
    """The indices of the text and label columns `read_labeled` reads from `path` given these names
    (None: the usual names), from its header alone."""
    with open(path, encoding=decoding(encoding), errors="replace", newline="") as f:
        first = f.readline()  # a header of column names spans one line
    return _columns(_reader(first, path), path, text_column, label_column)[1:]


def _reader(content: str, path):
    tsv = Path(path).suffix.lower() == ".tsv" or "\t" in content.split("\n", 1)[0]
    return (csv.reader(io.StringIO(content), delimiter="\t", quoting=csv.QUOTE_NONE) if tsv
            else csv.reader(io.StringIO(content)))


def _columns(reader, path, text_column: str | None, label_column: str | None) -> tuple[list[str], int, int]:
    """(header, index of the text column, index of the label column) read from `reader`'s first row."""
    try:
        header = next(reader)
    except StopIteration:
        raise CharseqError(f"{path} is empty") from None
    except csv.Error as e:
        raise CharseqError(f"{path} line 1: {e}") from None
    if not any(name.strip() for name in header):
        raise CharseqError(f"{path} line 1 is empty: a file of labeled texts starts with a header naming its "
                           "columns (such as text and label)")
    ti = _pick(header, text_column, TEXT_COLUMNS, "text", path)
    li = _pick(header, label_column, LABEL_COLUMNS, "label", path)
    if ti == li:  # a model that reads its labels learns nothing it could use on a text
        raise CharseqError(f"{path}: the text column and the label column are the same column, "
                           f"{header[ti].strip()!r}", "--text-column and --label-column to name two")
    return header, ti, li


def _parse(content: str, path, text_column: str | None, label_column: str | None,
           skip_bad_rows: bool) -> LabeledTexts:
    reader = _reader(content, path)
    header, ti, li = _columns(reader, path, text_column, label_column)
    texts, labels, skipped = [], [], 0
    while True:
        line = reader.line_num + 1  # where this row starts (a quoted field may span lines)
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise CharseqError(f"{path} line {line}: {e}" + (
                " (a quote opened there is never closed)" if "end of data" in str(e) else "")) from None
        if not any(field.strip() for field in row):
            # A blank line, or one of spaces or separators only (an editor leaves those, a spreadsheet
            # saves a row once touched as ",,"): no row was meant.
            continue
        problem = None
        if len(row) != len(header) and reader.line_num > line and any("\n" in field for field in row):
            problem = (f"opens a quoted field that runs to line {reader.line_num} and the row has {len(row)} "
                       f"fields, the header {len(header)}: is a closing quote missing?")
        elif len(row) != len(header):
            problem = f"has {counted(len(row), 'field')}, the header has {len(header)}"
        elif not row[ti].strip():
            problem = "has an empty text"
        elif not row[li].strip():
            problem = "has an empty label"
        if problem:
            if not skip_bad_rows:
                raise CharseqError(f"{path} line {line} {problem}", "--skip-bad-rows to skip such rows")
            skipped += 1
            continue
        texts.append(row[ti])
        labels.append(row[li].strip())
    if not texts:
        raise CharseqError(f"{path} has no usable rows")
    quoted = sum(map(bool, map(CSV_QUOTED.fullmatch, texts))) if reader.dialect.quoting == csv.QUOTE_NONE else 0
    return LabeledTexts(texts, labels, skipped, quoted)

