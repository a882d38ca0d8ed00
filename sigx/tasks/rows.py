"""Reading dataset rows from local files (JSONL or Parquet) with one-line errors, and step-list columns."""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from pathlib import Path

from sigx.config import RecipeError

#: the step-list columns a row may carry (Search-P1's reference track)
STEP_COLUMNS = ("reference_path", "reference_plan")


class MalformedColumn(ValueError):
    """A column that is neither absent, one text nor a list of texts; the message says what it holds."""


def absent(value) -> bool:
    """A missing cell: null, or a Parquet / pandas NaN."""
    return value is None or isinstance(value, float) and math.isnan(value)


def texts(value) -> list[str]:
    """The entries of a list column as text (strings, or numbers such as the answer 1969), null entries skipped.
    A mapping, a boolean or a nested list is MalformedColumn: read as text, ``{"a": 1}`` became the entry "a" and
    a null answer the answer "None"."""
    if isinstance(value, (str, Mapping)) or not hasattr(value, "__iter__"):
        raise MalformedColumn(f"is {_shown(value)}, not a list")
    out = []
    for entry in value:
        if absent(entry):
            continue
        if isinstance(entry, bool) or not isinstance(entry, (str, numbers.Number)):
            raise MalformedColumn(f"holds {_shown(entry)}, not text")
        out.append(str(entry))
    return out


def _shown(value) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, float) else repr(value)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


def steps_column(value) -> tuple[str, ...]:
    """A dataset column of steps: a list, or one string with a step per line; () when absent. Anything else is
    MalformedColumn (see :func:`texts`)."""
    if absent(value):
        return ()
    if isinstance(value, str):
        return tuple(line.strip() for line in value.splitlines() if line.strip())
    return tuple(v.strip() for v in texts(value) if v.strip())


def check_step_columns(row: dict, where: str) -> None:
    """Each step-list column of ``row`` readable, else one line naming ``where`` (field, set, row) and the column."""
    for column in STEP_COLUMNS:
        try:
            steps_column(row.get(column))
        except MalformedColumn as err:
            raise RecipeError([f"{where}: column {column} {err}"]) from None


def read_rows(path: Path, field: str) -> list[dict]:
    """The rows of a .jsonl or .parquet file; a malformed line is one line naming ``field``, the file and the line."""
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise RecipeError([f"{field}: {path} line {number}: not a JSON object ({err.msg})"]) from None
            if not isinstance(row, dict):
                raise RecipeError([f"{field}: {path} line {number}: not a JSON object"])
            rows.append(row)
        return rows
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise RecipeError([f"{field}: {path} is Parquet, which needs pyarrow: pip install 'sigx[search]' "
                               "(or give a .jsonl copy)"]) from None
        try:
            return pq.read_table(path).to_pylist()
        except Exception as err:  # not Parquet, truncated, unreadable: pyarrow's own error, its first line
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise RecipeError([f"{field}: {path}: not a readable Parquet file ({first})"]) from None
    raise RecipeError([f"{field}: {str(path)!r} is not a .jsonl or .parquet file"])


def load_hub_rows(dataset: str, subset: str | None, split: str, field: str) -> list[dict]:
    """A hub dataset's split through ``datasets`` (a network or a warm HF cache); every failure is one line."""
    try:
        import datasets
    except ImportError:
        raise RecipeError([f"{field}: loading from the hub needs the datasets package: pip install 'sigx[gpu]' "
                           "(or give a local copy)"]) from None
    try:
        return list(datasets.load_dataset(dataset, subset, split=split))
    except Exception as err:  # network, unknown name, unknown split: all end the same way for the user
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise RecipeError([f"{field}: cannot load {dataset!r} ({subset}, split {split!r}): {first}; download it "
                           "where there is a network and give its local path"]) from None
