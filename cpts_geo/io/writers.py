"""Tables out: records, JSON, cells safe for spreadsheets and terminals, vintage and sources.

:func:`table_meta` gives the vintage and sources that travel with a table: a footer under a
printed table, a sidecar beside a CSV file, the ``meta`` of a JSON envelope, the site's downloads.
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

from .._about import __version__

__all__ = ["csv_metadata", "dump_json", "formula_safe", "jsonable", "meta_line", "records",
           "spreadsheet_safe", "table_meta", "terminal_safe"]

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

    Examples
    --------
    >>> records(pd.DataFrame({"a": [1.5, float("nan")], "d": pd.to_datetime(["2020-07-09", None])}))
    [{'a': 1.5, 'd': '2020-07-09'}, {'a': None, 'd': None}]
    """
    cols = [c for c in df.columns if c != "geometry"]
    # column by column (no copy of the frame, no geometry taken along)
    values = [[jsonable(v) for v in df[c].to_numpy(dtype=object)] for c in cols]
    return [dict(zip(cols, row, strict=True)) for row in zip(*values, strict=True)] \
        if cols else [{} for _ in range(len(df))]


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
        series = out[col]
        if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            continue
        if pd.api.types.is_datetime64_any_dtype(series):
            continue
        values = series.to_numpy(dtype=object)
        hits = [i for i, v in enumerate(values) if isinstance(v, str) and _FORMULA.match(v)]
        if hits:  # only the columns holding such a cell are rewritten (as object)
            values = values.copy()
            for i in hits:
                values[i] = formula_safe(values[i])
            out[col] = pd.Series(values, index=out.index, dtype=object)
    return out


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
