"""Tables out: JSON-ready records, JSON files, and cells safe for spreadsheets and terminals."""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime
from typing import IO, Any

import numpy as np
import pandas as pd

__all__ = ["dump_json", "jsonable", "records", "spreadsheet_safe", "terminal_safe"]

_FORMULA = re.compile(r"^[=+\-@\t\r]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def jsonable(value: Any) -> Any:
    """A value as JSON can hold it: NaN/NA -> None, numpy scalars -> Python, dates -> ISO."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float | np.floating):
        return None if not math.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat() if value == value.normalize() else value.isoformat()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of ``df`` (without geometry) as JSON-ready dicts: NaN/NA -> None, dates -> ISO.

    Examples
    --------
    >>> records(pd.DataFrame({"a": [1.5, float("nan")], "d": pd.to_datetime(["2020-07-09", None])}))
    [{'a': 1.5, 'd': '2020-07-09'}, {'a': None, 'd': None}]
    """
    cols = [c for c in df.columns if c != "geometry"]
    return [{c: jsonable(v) for c, v in zip(cols, row, strict=True)}
            for row in df[cols].itertuples(index=False, name=None)]


def dump_json(obj: Any, fh: IO[str]) -> None:
    """Write ``obj`` as indented UTF-8 JSON."""
    json.dump(obj, fh, ensure_ascii=False, indent=1, default=jsonable, allow_nan=False)
    fh.write("\n")


def spreadsheet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text cells no spreadsheet would run as a formula.

    A text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is prefixed
    with an apostrophe (OWASP's advice against CSV injection); numbers are left alone.

    Examples
    --------
    >>> spreadsheet_safe(pd.DataFrame({"cpts": ["=HYPERLINK(1)", "Gier"], "n": [-1, 2]})
    ...                  ).values.tolist()
    [["'=HYPERLINK(1)", -1], ['Gier', 2]]
    """
    out = df.copy()
    for col in out.columns:
        if pd.api.types.is_numeric_dtype(out[col]) or pd.api.types.is_bool_dtype(out[col]):
            continue
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            continue
        values = out[col].astype(object)
        out[col] = values.map(lambda v: "'" + v if isinstance(v, str) and _FORMULA.match(v)
                              else v)
    return out


def terminal_safe(text: str) -> str:
    r"""Text with control characters and bidirectional overrides shown as escapes.

    Names from input files may hold terminal escape sequences or right-to-left overrides; a
    table printed in a terminal shows them as ``\x1b`` or ``\u202e`` instead of obeying them.

    Examples
    --------
    >>> terminal_safe("Gier\x1b[31m")
    'Gier\\x1b[31m'
    """
    def esc(m: re.Match[str]) -> str:
        ch = m.group(0)
        return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"

    return _CONTROL.sub(esc, text)
