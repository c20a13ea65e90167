"""Tables out: records, JSON, cells safe for spreadsheets and terminals, vintage and sources.

:func:`table_meta` gives the vintage and sources that travel with a table: a footer under a
printed table, a sidecar beside a CSV file, the ``meta`` of a JSON envelope, the site's downloads.

The site's national tables are converted a whole column at a time, not a value at a time:
:func:`number_array`, :func:`text_array` and :func:`iso_dates` take a column's values as NumPy
or Arrow arrays, :func:`number_text` writes numbers as Python's ``str`` does, :func:`join_text`
and :func:`text_where` assemble texts with Arrow's string kernels, :func:`holds_any` tells
whether a column's texts hold a character that needs escaping or quoting.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .._about import __version__

__all__ = ["csv_metadata", "dump_json", "formula_safe", "holds_any", "iso_dates", "join_text",
           "jsonable", "meta_line", "number_array", "number_text", "records", "spreadsheet_safe",
           "string_array", "table_meta", "terminal_safe", "text_array", "text_where"]

#: The vintage keys of a table's ``attrs``, first in its metadata.
VINTAGE_KEYS = ("cog_year", "population_year", "census_year", "source")

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

    The values are those of :func:`jsonable`, column by column: numbers and yes/no as Python
    ``int``, ``float`` and ``bool`` (missing or infinite as None), text as ``str``.

    Examples
    --------
    >>> records(pd.DataFrame({"a": [1.5, float("nan")], "d": pd.to_datetime(["2020-07-09", None])}))
    [{'a': 1.5, 'd': '2020-07-09'}, {'a': None, 'd': None}]
    """
    # column by column, by position (no copy of the frame, no geometry taken along, and no
    # copy of its attrs for each column: a plain frame over the same data has none)
    plain = pd.DataFrame(df, copy=False)
    plain.attrs = {}
    cols, values = [], []
    for name, series in plain.items():
        if name != "geometry":
            cols.append(name)
            values.append(_json_column(series))
    return [dict(zip(cols, row, strict=True)) for row in zip(*values, strict=True)] \
        if cols else [{} for _ in range(len(df))]


def _json_column(series: pd.Series) -> list[Any]:
    """:func:`jsonable` of each value of a column, at once for numbers, yes/no and text."""
    numbers = number_array(series)
    if numbers is not None:
        arr, missing = numbers
        out = arr.tolist()
        if arr.dtype.kind == "f":
            missing = missing | ~np.isfinite(arr)
        for i in np.flatnonzero(missing).tolist():
            out[i] = None
        return out
    dates = iso_dates(series)
    if dates is not None:
        return dates
    if isinstance(series.dtype, pd.CategoricalDtype):
        # each category once; code -1 (missing) takes the last item, None
        cats = [jsonable(v) for v in series.cat.categories.to_numpy(dtype=object)]
        cats.append(None)
        return [cats[c] for c in series.cat.codes.to_numpy().tolist()]
    if isinstance(series.dtype, pd.StringDtype):  # missing: NaN or NA, None for jsonable
        return string_array(series).to_pylist()
    values = series.to_numpy(dtype=object)
    if _all_text(series, values):  # text as it is; jsonable for the missing values only
        out = values.tolist()
        for i in np.flatnonzero(pd.isna(values)).tolist():
            out[i] = jsonable(out[i])
        return out
    return [jsonable(v) for v in values]


def iso_dates(series: pd.Series) -> list[str | None] | None:
    """A column of dates (no time of day, no time zone) as ISO text, as :func:`jsonable` gives.

    None for any other column (a date-time with a time of day, or in a time zone: see
    :func:`jsonable` value by value).

    Examples
    --------
    >>> iso_dates(pd.Series(pd.to_datetime(["2020-07-09", None])))
    ['2020-07-09', None]
    >>> iso_dates(pd.Series(pd.to_datetime(["2020-07-09 12:00"]))) is None
    True
    """
    dtype = series.dtype
    if not isinstance(dtype, np.dtype) or dtype.kind != "M":
        return None
    values = series.to_numpy()
    days = values.astype("datetime64[D]")
    missing = np.isnat(values)
    if (days[~missing] != values[~missing]).any():
        return None
    out: list[str | None] = np.datetime_as_string(days, unit="D").tolist()
    for i in np.flatnonzero(missing).tolist():
        out[i] = None
    return out


def _all_text(series: pd.Series, values: np.ndarray) -> bool:
    """Whether every value of ``series`` (``values``: as objects) is a ``str`` or missing."""
    if isinstance(series.dtype, pd.StringDtype):
        return True
    return pd.api.types.is_object_dtype(series.dtype) and pd.api.types.infer_dtype(
        values, skipna=True) in ("string", "empty")


def text_array(series: pd.Series) -> pa.Array | None:
    """A column of text as an Arrow array of ``large_string``, null where a value is missing.

    For pandas' string dtype, or an object column whose values are all ``str`` or missing
    (``pandas.isna``); None for any other column.

    Examples
    --------
    >>> text_array(pd.Series(["a", None, float("nan")], dtype=object)).to_pylist()
    ['a', None, None]
    >>> text_array(pd.Series(["a", 1], dtype=object)) is None
    True
    """
    if isinstance(series.dtype, pd.StringDtype):
        return string_array(series)
    if not pd.api.types.is_object_dtype(series.dtype):
        return None
    values = series.to_numpy(dtype=object)
    if not _all_text(series, values):
        return None
    return pa.array(values, type=pa.large_string(), mask=pd.isna(values))


def number_array(series: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """The values of a column of numbers or yes/no as a NumPy array, and which are missing.

    Integers, floats (64 bits at most) and booleans, NumPy's or pandas' nullable ones
    (``Int64``, ``Float64``, ``boolean``); None for a column of any other kind. The missing
    values of a nullable column are 0, NaN or False in the array.

    Examples
    --------
    >>> arr, missing = number_array(pd.Series([3, None], dtype="Int64"))
    >>> arr.tolist(), missing.tolist()
    ([3, 0], [False, True])
    >>> number_array(pd.Series(["a"])) is None
    True
    """
    dtype = series.dtype
    if isinstance(dtype, np.dtype):
        if dtype.kind in "biu" or (dtype.kind == "f" and dtype.itemsize <= 8):
            arr = series.to_numpy()
            return arr, np.zeros(len(arr), dtype=bool)
        return None
    array = series.array
    if isinstance(array, pd.arrays.IntegerArray | pd.arrays.FloatingArray
                  | pd.arrays.BooleanArray):
        kind = array.dtype.numpy_dtype  # 64 bits at most
        fill = np.nan if kind.kind == "f" else 0
        return (array.to_numpy(dtype=kind, na_value=fill),
                np.asarray(array.isna(), dtype=bool))
    return None


def number_text(values: np.ndarray) -> pa.Array:
    """The text of each number of a NumPy array as Python's ``str`` writes it, at once.

    Integers by Arrow's cast; floats as 64-bit floats by NumPy, which writes the shortest text
    that reads back the same value, as Python's ``repr``; each distinct float once (a column
    of rates holds few). NaN is ``"nan"``.

    Examples
    --------
    >>> number_text(np.array([0.1, -0.0, 1e16, 0.1, 0.0, np.nan])).to_pylist()
    ['0.1', '-0.0', '1e+16', '0.1', '0.0', 'nan']
    >>> number_text(np.array([3, -12])).to_pylist()
    ['3', '-12']
    """
    if values.dtype.kind in "iu":
        return pc.cast(pa.array(values), pa.large_string())
    floats = np.ascontiguousarray(values, dtype=np.float64)
    codes, bits = pd.factorize(floats.view(np.int64))  # by bits: -0.0 apart from 0.0
    text = pa.array(np.asarray(bits, dtype=np.int64).view(np.float64).astype(str),
                    type=pa.large_string())
    return text.take(pa.array(codes))


def text_where(mask: np.ndarray, text: str, other: pa.Array) -> pa.Array:
    """``other`` with ``text`` where ``mask`` is true (and where ``other`` is null).

    Examples
    --------
    >>> text_where(np.array([True, False, False]), "null", pa.array(["1", "2", None])
    ...            ).to_pylist()
    ['null', '2', 'null']
    """
    blank = pa.scalar(text, type=pa.large_string())
    return pc.if_else(pa.array(mask, type=pa.bool_()), blank,
                      other.cast(pa.large_string())).fill_null(blank)


def string_array(series: pd.Series) -> pa.Array:
    """A column of pandas' string dtype as one Arrow array of ``large_string`` (null: missing).

    Examples
    --------
    >>> string_array(pd.Series(["a", None], dtype="string")).to_pylist()
    ['a', None]
    """
    arr = pa.array(series.array)
    if isinstance(arr, pa.ChunkedArray):  # pandas' Arrow strings come in chunks
        arr = arr.combine_chunks()
    return arr.cast(pa.large_string())


def holds_any(strings: pa.Array, chars: str) -> bool:
    r"""Whether some text of an Arrow array of strings holds one of these characters.

    Looked for in the array's UTF-8 bytes at once: an ASCII character is there if its byte is
    (such a byte is never part of another character); any other character, if the first byte of
    its UTF-8 is there, by Arrow's substring search. The bytes a missing value may leave in the
    array count too: True may be said wrongly, False never.

    Examples
    --------
    >>> holds_any(pa.array(["a;b", None]), ";"), holds_any(pa.array(["ab", "é"]), ";\n")
    (True, False)
    """
    arr = strings.cast(pa.large_string())
    if not len(arr) or arr.buffers()[2] is None:
        return False
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset:arr.offset + len(arr) + 1]
    present = np.zeros(256, dtype=bool)
    present[np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]]] = True
    return any(present[ord(c)] if ord(c) < 128 else
               present[c.encode("utf-8")[0]] and pc.any(pc.match_substring(arr, c)).as_py()
               for c in chars)


def join_text(*parts: Any, sep: str = "") -> pa.Array:
    """Texts joined element-wise (Arrow's ``binary_join_element_wise``): columns and constants.

    Each part is an Arrow array of strings or a ``str`` (the same for every row); a row with a
    null in a part is null.

    Examples
    --------
    >>> join_text("<v>", pa.array(["1", None, "3"]), "</v>").to_pylist()
    ['<v>1</v>', None, '<v>3</v>']
    """
    def arg(part: Any) -> Any:
        if isinstance(part, str):
            return pa.scalar(part, type=pa.large_string())
        return part.cast(pa.large_string()) if part.type != pa.large_string() else part

    return pc.binary_join_element_wise(*map(arg, parts), pa.scalar(sep, pa.large_string()))


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
    for j, dtype in enumerate(out.dtypes):
        if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            continue
        if pd.api.types.is_datetime64_any_dtype(dtype):
            continue
        series = out.iloc[:, j]
        hits = _formula_cells(series)
        if hits.any():  # only the columns holding such a cell are rewritten (as object)
            values = series.to_numpy(dtype=object).copy()
            values[hits] = "'" + values[hits]
            out.isetitem(j, pd.Series(values, index=out.index, dtype=object))
    return out


#: The first characters of a cell that a spreadsheet would run as a formula (``_FORMULA``).
_FORMULA_FIRST = ("=", "+", "-", "@", "\t", "\r")


def _formula_cells(series: pd.Series) -> np.ndarray:
    """Which cells of a column are text that a spreadsheet would run as a formula."""
    if isinstance(series.dtype, pd.CategoricalDtype):  # each category once
        cats = _formula_cells(pd.Series(series.cat.categories.to_numpy(dtype=object)))
        return np.append(cats, False)[series.cat.codes.to_numpy()]  # code -1: missing
    strings = text_array(series)
    if strings is not None:  # the first character of each text at once
        first = pc.utf8_slice_codeunits(strings, 0, 1)
        hits = pc.is_in(first, value_set=pa.array(_FORMULA_FIRST, type=pa.large_string()))
        return np.asarray(hits.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
    values = series.to_numpy(dtype=object)
    return np.fromiter((isinstance(v, str) and v.startswith(_FORMULA_FIRST) for v in values),
                       dtype=bool, count=len(values))


def formula_safe(text: str) -> str:
    """``text`` with a leading apostrophe if a spreadsheet would run it as a formula.

    Examples
    --------
    >>> formula_safe("=1+1"), formula_safe("Gier")
    ("'=1+1", 'Gier')
    """
    return "'" + text if _FORMULA.match(text) else text


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


def table_meta(attrs: Mapping[str, Any], *, territories: str | None = None,
               generated: str | None = None) -> dict[str, Any]:
    """The vintage and sources that travel with a table (CLI footer, CSV sidecar, JSON, site).

    Parameters
    ----------
    attrs : mapping
        The table's ``attrs`` (every cpts_geo table carries its vintage there).
    territories : str, optional
        Where the CPTS territories come from (file names).
    generated : str, optional
        When the table was made (ISO 8601); default now, in UTC, to the second.

    Returns
    -------
    dict
        ``cog_year``, ``population_year``, ``census_year``, ``source`` (the communes and their
        populations), ``territories``, ``generated``, ``cpts_geo`` (its version), then the
        table's other plain attributes (``as_of``, ``rules_id``...), JSON-ready.

    Examples
    --------
    >>> meta = table_meta({"cog_year": 2026, "population_year": 2026, "census_year": 2023,
    ...                    "source": "bundle"}, territories="cpts_seeds.csv",
    ...                   generated="2026-11-23T02:00:00+00:00")
    >>> meta["population_year"], meta["territories"], meta["cpts_geo"] == __version__
    (2026, 'cpts_seeds.csv', True)
    """
    meta: dict[str, Any] = {k: jsonable(attrs.get(k)) for k in VINTAGE_KEYS}
    meta["territories"] = territories if territories is not None else attrs.get("territories")
    meta["generated"] = generated or datetime.now(UTC).replace(microsecond=0).isoformat()
    meta["cpts_geo"] = __version__
    for key in sorted(attrs):
        value = jsonable(attrs[key])
        if key not in meta and (value is None or isinstance(value, str | int | float | bool)):
            meta[key] = value
    return meta


def meta_line(meta: Mapping[str, Any]) -> str:
    """The vintage and sources of a table in one line, for a footer under a printed table.

    Examples
    --------
    >>> print(meta_line({"cog_year": 2026, "population_year": 2026, "census_year": 2023,
    ...                  "source": "bundle", "cpts_geo": "0.2.0"}))
    COG 2026 · populations in force in 2026 (census 2023) · communes: bundle · cpts-geo 0.2.0
    """
    parts = []
    if meta.get("cog_year"):
        parts.append(f"COG {meta['cog_year']}")
    if meta.get("population_year"):
        census = f" (census {meta['census_year']})" if meta.get("census_year") else ""
        parts.append(f"populations in force in {meta['population_year']}{census}")
    if meta.get("source"):
        parts.append(f"communes: {meta['source']}")
    if meta.get("territories"):
        parts.append(f"territories: {meta['territories']}")
    if meta.get("as_of"):
        parts.append(f"CPTS as of {meta['as_of']}")
    parts.append(f"cpts-geo {meta.get('cpts_geo', __version__)}")
    return " · ".join(parts)


def csv_metadata(name: str, meta: Mapping[str, Any]) -> dict[str, Any]:
    """The sidecar of a CSV file, ``<name>-metadata.json``: its vintage and sources.

    A sidecar, not a comment line in the CSV, so that pandas, Excel and LibreOffice read the
    CSV as it is, with no option. The name and the ``@context``/``url`` keys follow the W3C
    *CSV on the Web* convention, so that CSVW tools find it; ``cpts_geo`` holds
    :func:`table_meta`.

    Examples
    --------
    >>> side = csv_metadata("coverage.csv", {"source": "bundle", "generated": "2026-11-23"})
    >>> side["url"], side["dc:source"], side["cpts_geo"]["generated"]
    ('coverage.csv', 'bundle', '2026-11-23')
    """
    return {"@context": "http://www.w3.org/ns/csvw", "url": name,
            "dc:source": meta.get("source"), "dc:created": meta.get("generated"),
            "cpts_geo": dict(meta)}
