"""Read CPTS territories from the files planners keep, into one membership table.

A CPTS territory is published in many shapes: a spreadsheet with one row per CPTS and commune
(*long form*), a press release or spreadsheet listing all the communes of a CPTS in one cell
(*wide form*), or a map (GeoJSON, GeoPackage) with one outline per CPTS. :func:`read_territories`
reads all of them into the *membership table*, one row per (CPTS, commune), which the rest of the
library (coverage, maps, publishing) consumes.

Nothing is dropped silently: every problem of a file (unknown code, ambiguous name, duplicate row,
share out of range, unknown status, bad date...) is collected with its file, row, column and value,
and reported in one :class:`~cpts_geo.errors.TerritoryError`. Values that were accepted but
changed (the code of a commune déléguée, a former name, a repaired outline) are reported with a
:class:`~cpts_geo.errors.CptsGeoWarning`.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import json
import math
import os
import re
import unicodedata
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .codes import _KIND_LABEL, _cog_year, _index, match_name, name_key, normalize_insee
from .errors import (
    CptsGeoWarning,
    InputError,
    InvalidInseeCodeError,
    Problem,
    TerritoryError,
)
from .reference import (
    LOCAL_CRS,
    METRO_CRS,
    load_communes,
    load_departements,
    normalize_departement,
)

__all__ = ["STATUSES", "normalize_status", "read_territories"]

STATUSES: tuple[str, ...] = (
    "pré-projet",
    "lettre d'intention validée",
    "projet de santé validé",
    "ACI signé",
)
"""The CPTS life cycle, in order: pre-project, letter of intent validated by the ARS, health
project validated, and the ACI (accord conventionnel interprofessionnel) signed with the CPAM."""

_STATUS_DTYPE = pd.CategoricalDtype(list(STATUSES), ordered=True)

_PRE, _LI, _PS, _ACI = STATUSES
_STATUS_SPELLINGS: dict[str, str] = {
    **dict.fromkeys(
        ["pre projet", "preprojet", "en pre projet", "pre project", "preproject"], _PRE
    ),
    **dict.fromkeys(
        [
            "lettre d intention valide", "lettre d intention", "lettre intention",
            "lettre intention valide", "li", "li valide", "letter of intent",
            "letter of intent validated", "letter of intent valid",
        ],
        _LI,
    ),
    **dict.fromkeys(
        [
            "projet de sante valide", "projet de sante", "projet sante", "projet sante valide",
            "ps valide", "health project", "health project validated",
        ],
        _PS,
    ),
    **dict.fromkeys(
        [
            "aci signe", "aci", "signe", "aci signed", "signed", "contrat aci signe",
            "contractualise", "contractualisee",
        ],
        _ACI,
    ),
}

_EXTENSIONS = {
    ".csv": "csv", ".txt": "csv", ".tsv": "csv",
    ".xlsx": "excel", ".xlsm": "excel",
    ".geojson": "geojson", ".json": "geojson",
    ".gpkg": "gpkg",
}

# Accepted headers, as a user writes them. Matching ignores case, accents, spaces, underscores,
# hyphens, apostrophes and other punctuation ("Code INSEE", "code_insee", "CODEINSEE").
_ALIASES: dict[str, tuple[str, ...]] = {
    "cpts": (
        "cpts", "nom cpts", "nom de la cpts", "cpts nom", "cpts name", "name cpts",
        "libellé cpts", "territoire", "territoire cpts", "nom territoire", "nom du territoire",
    ),
    "cpts_id": (
        "cpts_id", "id cpts", "code cpts", "identifiant cpts", "cpts code", "numéro cpts",
    ),
    "insee": (
        "insee", "code insee", "code commune", "codgeo", "code géo", "insee com", "code com",
        "code insee commune", "code insee de la commune", "depcom", "n° insee", "num insee",
        "numéro insee", "insee code", "commune code", "municipality code",
    ),
    "commune": (
        "commune", "communes", "liste communes", "liste des communes", "communes membres",
        "communes couvertes", "communes concernées", "communes du territoire", "municipality",
        "municipalities",
    ),
    "commune_name": (
        "nom commune", "nom de la commune", "libellé commune", "libellé", "lib com", "lib géo",
        "libgeo", "nom com", "commune nom", "commune name", "commune publiée",
        "municipality name", "noms des communes",
    ),
    "departement": (
        "département", "départements", "dep", "dept", "dpt", "code département", "code dep",
        "coddep", "num dep", "numéro département", "department", "departments",
    ),
    "status": (
        "statut", "status", "étape", "état", "stade", "avancement", "statut cpts", "étape cpts",
    ),
    "status_date": (
        "status_date", "date", "date statut", "date du statut", "date de signature",
        "date signature", "date signature aci", "date aci", "date de l'étape", "date étape",
    ),
    "share": (
        "share", "part", "quote-part", "proportion", "fraction", "part population",
        "part de la population",
    ),
    "source": ("source", "sources"),
}
_COMMUNE_COLUMNS = ("insee", "commune", "commune_name")
_OUTLINE_COLUMNS = ("cpts", "cpts_id", "status", "status_date", "source")

_OUTPUT_COLUMNS = [
    "cpts", "cpts_id", "insee", "nom", "share", "status", "status_date", "source", "row",
]
_SPLIT_COLUMNS = ["insee", "nom", "cpts", "fraction", "assigned"]

_SIGNIFICANT = 0.1  # an outline covering 10 % of a commune makes it "split" if another does too
_REPORTED = 0.01  # intersections below 1 % of a commune are slivers, not listed in split_communes
_REPAIR_TOLERANCE = 0.01  # a repaired outline may change area by 1 % at most

# Projected CRS for area computations: Lambert-93 for metropolitan France, local UTM/RGAF
# projections overseas (areas in Lambert-93 would be meaningless there).
_LOCAL_CRS = LOCAL_CRS
_METROPOLE_CRS = METRO_CRS
# Where French communes are (lon/lat boxes with a margin): metropolitan France and Corsica,
# Antilles, Guyane, La Réunion, Mayotte.
_FRANCE_BOXES = (
    (-6.5, 41.0, 10.5, 51.5),
    (-63.5, 14.0, -60.5, 18.5),
    (-55.0, 1.8, -51.0, 6.2),
    (55.0, -21.6, 56.0, -20.7),
    (44.8, -13.2, 45.5, -12.4),
)

_ITEM_SEPARATORS = re.compile(r"[,;\n\r\t]+")
_BULLETS = "-–—•·*▪◦ \u00a0"
_CODE_LIKE = re.compile(r"^(?:\d[\d\s.]*|2[AaBb]\s*\d[\d\s.]*)$")
_DEP_SEPARATORS = re.compile(r"[,;/\s]+|\bet\b", re.IGNORECASE)
_SPACES = re.compile(r"[\s\u00a0\u202f]+")

_MONTHS = {
    "janvier": 1, "janv": 1, "jan": 1, "fevrier": 2, "fevr": 2, "fev": 2, "mars": 3,
    "avril": 4, "avr": 4, "mai": 5, "juin": 6, "juillet": 7, "juil": 7, "aout": 8,
    "septembre": 9, "sept": 9, "sep": 9, "octobre": 10, "oct": 10, "novembre": 11, "nov": 11,
    "decembre": 12, "dec": 12,
}
_ISO_DATE = re.compile(
    r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$"
)
_FR_DATE = re.compile(r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})(?: \d{1,2}:\d{2}(?::\d{2})?)?$")
_TEXT_DATE = re.compile(r"^(?:(\d{1,2})(?:er)?\s+)?([a-z]+)\.?\s+(\d{4})$")
_EXCEL_EPOCH = pd.Timestamp("1899-12-30")


# ---------------------------------------------------------------------------------------------
# Small value parsers
# ---------------------------------------------------------------------------------------------
def _is_empty(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    if isinstance(value, np.datetime64):
        return bool(np.isnat(value))
    return isinstance(value, str) and not value.strip()


def _text(value: object) -> str:
    """Cell value as clean text: whitespace collapsed, whole floats without ``.0``."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        value = int(value)
    return _SPACES.sub(" ", str(value)).strip()


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in text if not unicodedata.combining(ch)).lower()


def _header_key(header: object) -> str:
    return re.sub(r"[^a-z0-9]", "", _fold(str(header)))


def _slug(name: str) -> str:
    """Stable identifier from a CPTS name: ``"Vallée du Gier"`` -> ``"vallee-du-gier"``."""
    slug = re.sub(r"[^a-z0-9]+", "-", _fold(name).replace("œ", "oe").replace("æ", "ae"))
    return slug.strip("-") or name


_HEADER_TO_COLUMN: dict[str, str] = {
    _header_key(alias): column for column, aliases in _ALIASES.items() for alias in aliases
}


def _status_key(text: str) -> str:
    key = _fold(text)
    key = re.sub(r"^\s*\d+\s*[-.):/]?\s*", "", key)  # "1 - pré-projet", "4. ACI signé"
    key = re.sub(r"[’'`´‘ʼ_\-.:/]", " ", key)
    key = re.sub(r"\b(valide|validee|valides|validees|validated)\b", "valide", key)
    key = re.sub(r"\bsignee?s?\b", "signe", key)
    key = re.sub(r"^cpts\s+", "", " ".join(key.split()))
    return key


def normalize_status(value: object) -> str | None:
    """Turn a CPTS status as written in a file into its label in :data:`STATUSES`.

    Accepts the French labels and simple spellings, ignoring case, accents, hyphens and a
    leading step number: ``"aci"``, ``"ACI signe"``, ``"signé"``, ``"projet de sante"``,
    ``"lettre d'intention"``, ``"LI validée"``, ``"pre-projet"``, ``"préprojet"``,
    ``"4 - ACI signé"``...

    Parameters
    ----------
    value : str
        The status as written.

    Returns
    -------
    str or None
        One of :data:`STATUSES`, or None for an empty value.

    Raises
    ------
    InputError
        If the value is not a known status.

    Examples
    --------
    >>> normalize_status("aci signe"), normalize_status("LI validée"), normalize_status("")
    ('ACI signé', "lettre d'intention validée", None)
    """
    if _is_empty(value):
        return None
    if isinstance(value, str):
        found = _STATUS_SPELLINGS.get(_status_key(value))
        if found is not None:
            return found
    raise InputError(
        f"{value!r} is not a CPTS status: expected one of "
        f"{', '.join(repr(s) for s in STATUSES)} (simple spellings such as 'aci', "
        "'LI validée', 'projet de santé', 'pré-projet' are accepted)"
    )


def _parse_date(value: object) -> pd.Timestamp | None:
    """Parse a status date; raises ValueError with a message for a bad one."""
    if _is_empty(value):
        return None
    if isinstance(value, pd.Timestamp | dt.datetime | dt.date | np.datetime64):
        ts = pd.Timestamp(value)
        return ts.tz_localize(None) if ts.tzinfo is not None else ts
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        if 20000 <= float(value) <= 80000:  # an Excel date serial (1954-2119)
            return (_EXCEL_EPOCH + pd.Timedelta(days=float(value))).floor("D")
        raise ValueError("is not a date")
    text = _fold(_text(value))
    try:
        if m := _ISO_DATE.match(text):
            return pd.Timestamp(int(m[1]), int(m[2]), int(m[3]))
        if m := _FR_DATE.match(text):
            return pd.Timestamp(int(m[3]), int(m[2]), int(m[1]))
        if (m := _TEXT_DATE.match(text)) and m[2] in _MONTHS:
            return pd.Timestamp(int(m[3]), _MONTHS[m[2]], int(m[1] or 1))
    except ValueError:
        raise ValueError("is not a valid date (no such day)") from None
    raise ValueError("is not a date")


def _parse_share(value: object) -> tuple[float, bool]:
    """Parse a share; returns (share, given). Raises ValueError with a message."""
    if _is_empty(value):
        return 1.0, False
    percent = False
    if isinstance(value, bool):
        raise ValueError("is not a number")
    if isinstance(value, int | float | np.integer | np.floating):
        share = float(value)
    else:
        text = _SPACES.sub("", str(value))
        percent = text.endswith("%")
        text = text.rstrip("%").replace(",", ".")
        try:
            share = float(text)
        except ValueError:
            raise ValueError(
                "is not a number: expected a fraction such as 0.5 or a percentage such as "
                "'50 %'"
            ) from None
        if percent:
            share /= 100
    if not (math.isfinite(share) and 0 < share <= 1):
        hint = (
            "; write a percentage with its sign ('50 %') or as a fraction (0.5)"
            if not percent and 1 < share <= 100
            else ""
        )
        raise ValueError(
            f"is out of range: a share is the part of the commune's population in the CPTS, "
            f"more than 0 and at most 1 (or 100 %){hint}"
        )
    return share, True


def _split_items(value: object) -> list[object]:
    """Split a commune cell on commas, semicolons and new lines (names never contain them)."""
    if not isinstance(value, str):
        return [] if _is_empty(value) else [value]
    items = []
    for part in _ITEM_SEPARATORS.split(value):
        item = part.strip(_BULLETS).rstrip(".").strip()
        if item:
            items.append(item)
    return items


def _parse_departements(value: object) -> set[str]:
    deps = set()
    for part in _DEP_SEPARATORS.split(_text(value)):
        if part:
            deps.add(normalize_departement(part))
    return deps


# ---------------------------------------------------------------------------------------------
# Reading files into a raw table (or outlines)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Table:
    """Raw cells of a table: header and data rows with their spreadsheet row numbers."""

    source: str
    header: list[str]
    rows: list[tuple[int, list[object]]]
    header_row: int = 1
    sheet: str | None = None


def _find_header(
    source: str, raw: list[tuple[int, list[object]]]
) -> _Table:
    """Locate the header and return the table below it.

    The header is the first row naming a CPTS and a commune column; title rows above are skipped.
    """
    nonempty = [(i, r) for i, r in enumerate(raw) if any(not _is_empty(v) for v in r[1])]
    if not nonempty:
        raise InputError(f"{source}: the file has no data (only empty rows)")
    pos = nonempty[0][0]
    for i, (_, values) in nonempty[:20]:
        columns = {_HEADER_TO_COLUMN.get(_header_key(v)) for v in values if not _is_empty(v)}
        if "cpts" in columns and columns & set(_COMMUNE_COLUMNS):
            pos = i
            break
    header_row, values = raw[pos]
    header = [("" if _is_empty(v) else _text(v)) for v in values]
    while header and not header[-1]:
        header.pop()
    rows = [(n, list(v)) for n, v in raw[pos + 1:] if any(not _is_empty(x) for x in v)]
    return _Table(source, header, rows, header_row)


def _decode(data: bytes, name: str, what: str = "CSV") -> str:
    if data.startswith(b"PK\x03\x04"):
        raise InputError(
            f"{name}: this is not a text {what} file but a zip archive (an Excel workbook?): "
            "save it with the .xlsx extension, or export it as CSV"
        )
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")  # Excel "Unicode text" export
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    if b"\x00" in data:
        raise InputError(f"{name}: this is not a text {what} file (it contains binary data)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")  # Excel "CSV (séparateur: point-virgule)" on Windows
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _sniff_delimiter(text: str) -> str:
    """Pick the delimiter (``;``, ``,`` or tab) most frequent outside quotes at the start."""
    counts = dict.fromkeys(";,\t", 0)
    quoted = False
    lines = 0
    for ch in text[:20000]:
        if ch == '"':
            quoted = not quoted
        elif not quoted:
            if ch in counts:
                counts[ch] += 1
            elif ch == "\n":
                lines += 1
                if lines >= 20:
                    break
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _read_csv(path: Path, name: str) -> _Table:
    data = path.read_bytes()
    if not data.strip():
        raise InputError(f"{name}: the file is empty")
    text = _decode(data, name)
    if not text.strip(" \t\r\n\ufeff"):
        raise InputError(f"{name}: the file is empty")
    delimiter = "\t" if path.suffix.lower() == ".tsv" else _sniff_delimiter(text)
    if m := re.match(r"sep=(.)\r?\n", text):  # Excel's delimiter hint, hidden when opened
        delimiter, text = m[1], text[m.end():]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    raw: list[tuple[int, list[object]]] = []
    try:
        for number, record in enumerate(reader, start=1):
            raw.append((number, list(record)))
    except csv.Error as exc:
        raise InputError(
            f"{name}: malformed CSV near line {reader.line_num}: {exc} (a quote opened and "
            "not closed?)"
        ) from None
    return _find_header(name, raw)


def _read_excel(path: Path, name: str, sheet: str | int | None) -> _Table:
    import openpyxl

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl style and extension chatter
            book = openpyxl.load_workbook(path, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile, KeyError, XML errors... on bad files
        raise InputError(
            f"{name}: cannot be read as an Excel workbook (.xlsx): {type(exc).__name__}: {exc}"
        ) from None
    if sheet is None:
        ws = book.worksheets[0]
    elif isinstance(sheet, str):
        if sheet not in book.sheetnames:
            raise InputError(
                f"{name}: no sheet named {sheet!r}; the sheets are {book.sheetnames}"
            )
        ws = book[sheet]
    elif isinstance(sheet, int) and not isinstance(sheet, bool):
        if not -len(book.worksheets) <= sheet < len(book.worksheets):
            raise InputError(
                f"{name}: sheet index {sheet} is out of range; the workbook has "
                f"{len(book.worksheets)} sheet(s): {book.sheetnames}"
            )
        ws = book.worksheets[sheet]
    else:
        raise InputError(f"`sheet` was {sheet!r} but is expected to be a sheet name or index")
    source = name if sheet is None else f"{name} [sheet {ws.title!r}]"
    merged: dict[tuple[int, int], object] = {}
    for rng in ws.merged_cells.ranges:  # a CPTS name merged over its communes' rows
        top = ws.cell(rng.min_row, rng.min_col).value
        for r in range(rng.min_row, rng.max_row + 1):
            for c in range(rng.min_col, rng.max_col + 1):
                merged[(r, c)] = top
    raw: list[tuple[int, list[object]]] = []
    for r, values in enumerate(ws.iter_rows(min_row=1, min_col=1, values_only=True), start=1):
        cells = [merged.get((r, c), v) for c, v in enumerate(values, start=1)]
        cells = [v.strip() if isinstance(v, str) else v for v in cells]
        raw.append((r, cells))
    if not raw:
        raise InputError(f"{source}: the sheet is empty")
    table = _find_header(source, raw)
    return _Table(table.source, table.header, table.rows, table.header_row, ws.title)


def _frame_table(df: pd.DataFrame, name: str) -> _Table:
    header = [_text(c) for c in df.columns]
    rows = [
        (pos + 2, list(values))
        for pos, values in enumerate(df.itertuples(index=False, name=None))
    ]
    return _Table(name, header, rows)


def _read_geojson(path: Path, name: str) -> gpd.GeoDataFrame | _Table:
    data = path.read_bytes()
    if not data.strip():
        raise InputError(f"{name}: the file is empty")
    try:
        doc = json.loads(_decode(data, name, "GeoJSON"))
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{name}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    if isinstance(doc, list) and doc and all(isinstance(d, dict) for d in doc):
        return _frame_table(pd.DataFrame(doc), name)  # a JSON table: a list of records
    if not isinstance(doc, dict) or doc.get("type") not in ("FeatureCollection", "Feature"):
        raise InputError(
            f"{name}: not a GeoJSON FeatureCollection (top-level 'type' is "
            f"{doc.get('type') if isinstance(doc, dict) else type(doc).__name__!r})"
        )
    if doc.get("type") == "FeatureCollection" and not doc.get("features"):
        raise InputError(f"{name}: the GeoJSON has no features")
    return _read_ogr(path, name, None)


def _read_ogr(path: Path, name: str, layer: str | int | None) -> gpd.GeoDataFrame | _Table:
    import pyogrio

    try:
        if path.suffix.lower() == ".gpkg" and layer is None:
            layers = [str(n) for n, _ in pyogrio.list_layers(path) if n != "layer_styles"]
            if len(layers) > 1:
                raise InputError(
                    f"{name}: the GeoPackage has several layers {layers}: choose one with "
                    "sheet=<layer name>"
                )
            layer = layers[0] if layers else None
        gdf = gpd.read_file(path, layer=layer, engine="pyogrio")
    except InputError:
        raise
    except Exception as exc:  # pyogrio.errors.DataSourceError, DataLayerError...
        what = "GeoPackage" if path.suffix.lower() == ".gpkg" else "GeoJSON"
        detail = str(exc).split("; It might help")[0]  # drop GDAL's driver-prefix advice
        raise InputError(
            f"{name}: cannot be read as a {what} file: {type(exc).__name__}: {detail}"
        ) from None
    if gdf.empty:
        raise InputError(f"{name}: the layer has no features")
    return _geo_or_table(gdf, name)


def _geo_or_table(df: pd.DataFrame, name: str) -> gpd.GeoDataFrame | _Table:
    """Outlines if the frame has polygon geometries, else a plain table of its attributes."""
    if isinstance(df, gpd.GeoDataFrame) and df._geometry_column_name in df.columns:
        types = set(df.geometry.geom_type.dropna())
        if types & {"Polygon", "MultiPolygon"}:
            return df
        lines = types & {"LineString", "MultiLineString", "LinearRing"}
        if lines:
            raise InputError(
                f"{name}: the geometries are {', '.join(sorted(lines))}; CPTS outlines must be "
                "polygons (in QGIS: Vector > Geometry Tools > Lines to Polygons)"
            )
        df = pd.DataFrame(df.drop(columns=df.geometry.name))
    return _frame_table(df, name)


def _load(
    source: str | os.PathLike[str] | pd.DataFrame, sheet: str | int | None
) -> tuple[str, gpd.GeoDataFrame | _Table]:
    if isinstance(source, pd.DataFrame):
        if sheet is not None:
            raise InputError("`sheet` only applies to Excel workbooks and GeoPackage layers")
        return "DataFrame", _geo_or_table(source, "DataFrame")
    if not isinstance(source, str | os.PathLike):
        raise InputError(
            f"`source` was a {type(source).__name__} but is expected to be a file path or a "
            "(Geo)DataFrame"
        )
    path = Path(source)
    name = path.name
    kind = _EXTENSIONS.get(path.suffix.lower())
    if kind is None:
        hint = " (save the workbook as .xlsx)" if path.suffix.lower() in (".xls", ".ods") else ""
        raise InputError(
            f"{name}: unknown file type {path.suffix or '(no extension)'!r}{hint}; expected "
            f"one of {', '.join(sorted(_EXTENSIONS))}"
        )
    if not path.is_file():
        raise InputError(f"{name}: file not found ({path})")
    if sheet is not None and kind not in ("excel", "gpkg"):
        raise InputError(f"{name}: `sheet` only applies to Excel workbooks and GeoPackage layers")
    if kind == "csv":
        return name, _read_csv(path, name)
    if kind == "excel":
        return name, _read_excel(path, name, sheet)
    if kind == "geojson":
        return name, _read_geojson(path, name)
    return name, _read_ogr(path, name, sheet)


# ---------------------------------------------------------------------------------------------
# Columns
# ---------------------------------------------------------------------------------------------
def _map_columns(
    header: list[str], source: str, required: Sequence[str], wanted: Sequence[str]
) -> tuple[dict[str, int], list[str]]:
    """Map canonical column -> position; return also the ignored headers."""
    found: dict[str, list[int]] = defaultdict(list)
    ignored = []
    for pos, title in enumerate(header):
        column = _HEADER_TO_COLUMN.get(_header_key(title))
        if column is not None and column in wanted:
            found[column].append(pos)
        elif title:
            ignored.append(title)
    twice = {c: ps for c, ps in found.items() if len(ps) > 1}
    if twice:
        desc = "; ".join(
            f"{' and '.join(repr(header[p]) for p in ps)} are both read as {c!r}"
            for c, ps in twice.items()
        )
        raise InputError(f"{source}: ambiguous columns: {desc}; rename or remove one")
    missing = [c for c in required if c not in found]
    if "commune" in required:
        missing = [c for c in missing if c != "commune"]
        if not set(found) & set(_COMMUNE_COLUMNS):
            missing.append("commune")
    if missing:
        accepted = []
        for c in missing:
            names = list(_ALIASES[c])
            if c == "commune":
                names = [*_ALIASES["insee"], *names, *_ALIASES["commune_name"]]
            accepted.append(f"{c}: {', '.join(repr(n) for n in names)}")
        raise InputError(
            f"{source}: missing column(s) {', '.join(repr(c) for c in missing)}; columns found: "
            f"{', '.join(repr(h) for h in header if h) or 'none'}; accepted headers (case, "
            f"accents, spaces and underscores ignored): {'; '.join(accepted)}"
        )
    return {c: ps[0] for c, ps in found.items()}, ignored


# ---------------------------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------------------------
@dataclass
class _Entry:
    """CPTS-level attributes of one input row (or outline feature)."""

    row: int
    cpts: str | None
    cpts_id: str | None
    status: str | None
    status_date: pd.Timestamp | None
    source: str | None


@dataclass
class _Member:
    entry: _Entry
    insee: str
    share: float
    share_given: bool
    value: object
    column: str | None


@dataclass
class _Group:
    """One CPTS: all the rows that name it."""

    key: str
    name: str
    rows: list[int] = field(default_factory=list)
    spellings: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    ids: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    dates: dict[pd.Timestamp, list[int]] = field(default_factory=lambda: defaultdict(list))
    cpts_id: str = ""
    status: str | None = None
    status_date: pd.Timestamp | None = None


class _Report:
    """Problems and warnings of one input."""

    def __init__(self, source: str):
        self.source = source
        self.problems: list[Problem] = []
        self.notes: dict[str, list[str]] = defaultdict(list)

    def problem(self, row: int | None, column: str | None, value: object, message: str) -> None:
        self.problems.append(Problem(self.source, row, column, value, message))

    def note(self, kind: str, text: str) -> None:
        self.notes[kind].append(text)

    def raise_problems(self) -> None:
        if self.problems:
            order = sorted(self.problems, key=lambda p: -1 if p.row is None else p.row)
            raise TerritoryError(order)

    def warn(self) -> None:
        titles = {
            "code": "code(s) are not current communes and were resolved",
            "name": "name(s) were resolved with care",
            "spelling": "CPTS name(s) are written in several ways; the first spelling is used",
            "mismatch": "row(s) give a commune code and a name that disagree; the code is used",
            "repaired": "invalid outline(s) were repaired with shapely.make_valid",
            "split": "commune(s) are split between CPTS outlines (see attrs['split_communes'])",
            "no_geometry": "commune(s) of these départements have no boundary in the reference "
            "data and cannot be assigned from outlines; add them by code if a CPTS covers them",
            "shares": "commune(s) have shares adding up to more than 1: counted as overlaps",
        }
        for kind, texts in self.notes.items():
            warnings.warn(
                f"{self.source}: {len(texts)} {titles[kind]}: {'; '.join(texts)}",
                CptsGeoWarning,
                stacklevel=3,
            )


def _getter(values: list[object], header: list[str], cols: dict[str, int]) -> Callable[
    [str], tuple[str | None, object]
]:
    def get(column: str) -> tuple[str | None, object]:
        pos = cols.get(column)
        if pos is None:
            return None, None
        return header[pos], values[pos] if pos < len(values) else None

    return get


def _parse_entry(
    row: int, get: Callable[[str], tuple[str | None, object]], report: _Report
) -> _Entry:
    title, value = get("cpts")
    cpts = None
    if _is_empty(value):
        report.problem(row, title, value, "missing CPTS name")
    else:
        cpts = _text(value)
    _, value = get("cpts_id")
    cpts_id = None if _is_empty(value) else _text(value)
    title, value = get("status")
    status = None
    try:
        status = normalize_status(value)
    except InputError as exc:
        report.problem(row, title, value, str(exc))
    title, value = get("status_date")
    date = None
    try:
        date = _parse_date(value)
    except ValueError as exc:
        report.problem(
            row, title, value,
            f"{value!r} {exc}: expected a date such as 2020-07-09, 09/07/2020 or "
            "9 juillet 2020",
        )
    _, value = get("source")
    source = None if _is_empty(value) else _text(value)
    return _Entry(row, cpts, cpts_id, status, date, source)


def _looks_like_code(item: object) -> bool:
    if isinstance(item, bool):
        return False
    if isinstance(item, int | float | np.integer | np.floating):
        return True
    return bool(_CODE_LIKE.match(str(item).strip()))


def _describe_former(code: str, current: str) -> str:
    idx = _index()
    unit = idx.former[code][0]
    label = f"{unit.nom}, {_KIND_LABEL[unit.kind]}" if unit.nom else _KIND_LABEL[unit.kind]
    return f"{code} ({label}) -> {current} ({idx.current[current].nom})"


def _resolve_code(item: object) -> tuple[str | None, str | None, str | None]:
    """(code, problem, note) for a value that looks like an INSEE code."""
    try:
        code = normalize_insee(item)
    except InvalidInseeCodeError as exc:
        return None, str(exc), None
    idx = _index()
    if code in idx.current:
        return code, None, None
    targets = {u.current for u in idx.former.get(code, [])}
    if len(targets) == 1:
        current = targets.pop()
        return current, None, _describe_former(code, current)
    hint = " (codes 20xxx are pre-1976 Corsican codes: use 2A/2B)" if code[:2] == "20" else ""
    return None, (
        f"unknown INSEE code {code}: no current, delegated, associated or merged commune has "
        f"this code in the COG {_cog_year()}{hint}"
    ), None


def _resolve_item(
    item: object, deps: set[str] | None, fuzzy: bool
) -> tuple[str | None, str | None, tuple[str, str] | None]:
    """(code, problem, (note kind, note)) for one commune value, a code or a name."""
    if _looks_like_code(item):
        code, problem, note = _resolve_code(item)
        return code, problem, None if note is None else ("code", note)
    m = match_name(item, deps, fuzzy=fuzzy)
    if m.status == "exact":
        return m.code, None, None
    if m.status in ("former", "close"):
        return m.code, None, ("name", m.message)
    return None, m.message, None


def _expand_et(item: object, deps: set[str] | None) -> list[object]:
    """Split ``"A et B"`` (the last item of a French list) when it is not itself a name."""
    if not isinstance(item, str) or not re.search(r"\s+et\s+", item) or _looks_like_code(item):
        return [item]
    if match_name(item, deps).status != "unknown":
        return [item]
    parts = re.split(r"\s+et\s+", item)
    if all(match_name(p, deps).status == "exact" for p in parts):
        return list(parts)
    return [item]


def _secondary_check(
    code: str, value: object, deps: set[str] | None, row: int, report: _Report
) -> None:
    """Compare the code of a row with the name (or second code) it also gives."""
    items = _split_items(value)
    if len(items) != 1:
        return
    item = items[0]
    nom = _index().current[code].nom
    if _looks_like_code(item):
        other, _, _ = _resolve_code(item)
    else:
        if name_key(str(item)) == name_key(nom):
            return
        other = match_name(item, deps or {_index().current[code].departement}).code
    if other != code:
        report.note("mismatch", f"row {row}: code {code} is {nom}, but the row also says {item!r}")


def _table_members(
    table: _Table,
    cols: dict[str, int],
    *,
    scope: set[str] | None,
    fuzzy: bool,
    report: _Report,
) -> tuple[list[_Entry], list[_Member], bool]:
    entries: list[_Entry] = []
    members: list[_Member] = []
    wide = False
    idx = _index()
    width = len(table.header)
    for row, values in table.rows:
        extra = [v for v in values[width:] if not _is_empty(v)]
        if extra:
            report.problem(
                row, None, extra,
                f"the row has {width + len(extra)} cells but the header only {width} columns "
                "(a list of communes not quoted in a comma-separated file?)",
            )
            continue
        get = _getter(values, table.header, cols)
        entry = _parse_entry(row, get, report)
        entries.append(entry)
        deps = scope
        title, value = get("departement")
        if not _is_empty(value):
            try:
                deps = _parse_departements(value)
            except InputError as exc:
                report.problem(row, title, value, str(exc))
                deps = scope
        title, value = get("share")
        share, given = 1.0, False
        try:
            share, given = _parse_share(value)
        except ValueError as exc:
            report.problem(row, title, value, f"share {value!r} {exc}")
        cells = [get(c) for c in _COMMUNE_COLUMNS if c in cols]
        filled = [(t, v) for t, v in cells if _split_items(v)]
        if not filled:
            report.problem(row, cells[0][0], cells[0][1], "empty commune")
            continue
        column, primary = filled[0]
        items = [x for item in _split_items(primary) for x in _expand_et(item, deps)]
        wide = wide or len(items) > 1
        for item in items:
            code, problem, note = _resolve_item(item, deps, fuzzy)
            if problem is not None:
                report.problem(row, column, item, problem)
                continue
            assert code is not None
            if note is not None:
                report.note(note[0], f"row {row}: {note[1]}")
            dep = idx.current[code].departement
            if deps is not None and deps is not scope and dep not in deps:
                report.problem(
                    row, column, item,
                    f"commune {code} ({idx.current[code].nom}) is in département {dep}, not in "
                    f"{', '.join(sorted(deps))} as the row says",
                )
                continue
            if len(items) == 1 and len(filled) > 1:
                _secondary_check(code, filled[1][1], deps, row, report)
            if entry.cpts is not None:
                members.append(_Member(entry, code, share, given, item, column))
    return entries, members, wide


# ---------------------------------------------------------------------------------------------
# CPTS-level checks
# ---------------------------------------------------------------------------------------------
def _rows(rows: list[int]) -> str:
    return f"row{'s' if len(rows) > 1 else ''} {', '.join(map(str, rows))}"


def _group_cpts(
    entries: list[_Entry], titles: dict[str, str], report: _Report
) -> dict[str, _Group]:
    """Group rows by CPTS (names compared by slug) and check ids, statuses and dates."""
    groups: dict[str, _Group] = {}
    for e in entries:
        if e.cpts is None:
            continue
        key = _slug(e.cpts)
        g = groups.setdefault(key, _Group(key, e.cpts))
        g.rows.append(e.row)
        g.spellings[e.cpts].append(e.row)
        if e.cpts_id is not None:
            g.ids[e.cpts_id].append(e.row)
        if e.status is not None:
            g.statuses[e.status].append(e.row)
        if e.status_date is not None:
            g.dates[e.status_date].append(e.row)
    by_id: dict[str, list[_Group]] = defaultdict(list)
    for g in groups.values():
        if len(g.spellings) > 1:
            report.note(
                "spelling",
                " / ".join(f"{s!r} ({_rows(rs)})" for s, rs in g.spellings.items()),
            )
        for attr, label, column in (
            ("ids", "cpts_id", "cpts_id"),
            ("statuses", "statuses", "status"),
            ("dates", "status dates", "status_date"),
        ):
            values: dict[Any, list[int]] = getattr(g, attr)
            if len(values) > 1:
                desc = "; ".join(
                    f"{v.date() if isinstance(v, pd.Timestamp) else v!s} ({_rows(rs)})"
                    for v, rs in values.items()
                )
                first_conflict = sorted(r for rs in list(values.values())[1:] for r in rs)[0]
                report.problem(
                    first_conflict, titles.get(column, column),
                    [v.date() if isinstance(v, pd.Timestamp) else v for v in values],
                    f"CPTS {g.name!r} has conflicting {label}: {desc}",
                )
        g.cpts_id = next(iter(g.ids)) if g.ids else _slug(g.name)
        g.status = next(iter(g.statuses)) if g.statuses else None
        g.status_date = next(iter(g.dates)) if g.dates else None
        by_id[g.cpts_id].append(g)
    for cpts_id, gs in by_id.items():
        if len(gs) > 1:
            desc = "; ".join(f"{g.name!r} ({_rows(g.rows)})" for g in gs)
            report.problem(
                gs[1].rows[0], titles.get("cpts_id", titles.get("cpts")), cpts_id,
                f"cpts_id {cpts_id!r} is used by several CPTS: {desc}",
            )
    return groups


def _check_members(members: list[_Member], report: _Report) -> None:
    seen: dict[tuple[str, str], _Member] = {}
    by_commune: dict[str, list[_Member]] = defaultdict(list)
    for m in members:
        assert m.entry.cpts is not None
        key = (_slug(m.entry.cpts), m.insee)
        first = seen.get(key)
        if first is not None:
            where = (
                f"twice in row {m.entry.row}" if first.entry.row == m.entry.row
                else f"in rows {first.entry.row} and {m.entry.row}"
            )
            report.problem(
                m.entry.row, m.column, m.value,
                f"duplicate: commune {m.insee} ({_index().current[m.insee].nom}) is listed "
                f"{where} for CPTS {m.entry.cpts!r}",
            )
            continue
        seen[key] = m
        by_commune[m.insee].append(m)
    for insee, ms in by_commune.items():
        total = sum(m.share for m in ms)
        if len(ms) > 1 and any(m.share_given for m in ms) and total > 1 + 1e-6:
            # CPTS claiming more than the whole commune overlap there: a fact planners need to
            # see (the coverage counts each inhabitant once), not an input error
            report.note(
                "shares",
                f"{insee} {_index().current[insee].nom}: {total:g} "
                f"({_rows([m.entry.row for m in ms])})",
            )


# ---------------------------------------------------------------------------------------------
# Outlines
# ---------------------------------------------------------------------------------------------
def _local_epsg(insee: str) -> int:
    return _LOCAL_CRS.get(insee[:3], _METROPOLE_CRS)


def _in_france(bounds: np.ndarray) -> np.ndarray:
    ok = np.zeros(len(bounds), dtype=bool)
    for x0, y0, x1, y1 in _FRANCE_BOXES:
        ok |= (
            (bounds[:, 0] >= x0) & (bounds[:, 1] >= y0)
            & (bounds[:, 2] <= x1) & (bounds[:, 3] <= y1)
        )
    return ok


def _revalidate(geoms: np.ndarray) -> np.ndarray:
    """Repair what a reprojection broke (vertices a few mm apart that now cross)."""
    geoms = np.asarray(geoms, dtype=object)
    bad = ~shapely.is_valid(geoms) & ~shapely.is_missing(geoms)
    if bad.any():
        geoms = geoms.copy()
        geoms[bad] = [_polygonal(shapely.make_valid(g)) for g in geoms[bad]]
    return geoms


def _union(geoms: list[shapely.Geometry]) -> shapely.Geometry:
    try:
        return shapely.union_all(geoms)
    except shapely.errors.GEOSException:  # robustness fallback: snap to a 1 cm grid
        return shapely.union_all(_revalidate(np.asarray(geoms, dtype=object)), grid_size=1e-7)


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def _check_outlines(
    gdf: gpd.GeoDataFrame, report: _Report
) -> tuple[list[shapely.Geometry | None], str]:
    """Validate geometries and CRS; return the geometries in EPSG:4326 (None when invalid)."""
    source = report.source
    if gdf.crs is None:
        raise InputError(
            f"{source}: the outlines have no coordinate reference system (CRS): save the file "
            "with one (EPSG:2154 Lambert-93, or EPSG:4326 longitude/latitude)"
        )
    crs = gdf.crs.to_string()
    geoms: list[shapely.Geometry | None] = []
    for pos, geom in enumerate(gdf.geometry):
        row = pos + 2
        if geom is None or geom.is_empty:
            report.problem(row, "geometry", None, "the feature has no geometry")
            geoms.append(None)
        elif geom.geom_type not in ("Polygon", "MultiPolygon"):
            report.problem(
                row, "geometry", geom.geom_type,
                f"the feature is a {geom.geom_type}, not a polygon: an outline file holds the "
                "polygon of each CPTS",
            )
            geoms.append(None)
        elif not geom.is_valid:
            reason = shapely.is_valid_reason(geom)
            fixed = _polygonal(shapely.make_valid(geom))
            change = abs(fixed.area - geom.area) / max(fixed.area, geom.area, 1e-300)
            if fixed.is_empty or change > _REPAIR_TOLERANCE:
                report.problem(
                    row, "geometry", reason,
                    f"invalid outline ({reason}); repairing it would change its area by "
                    f"{change:.0%}, so it is not repaired automatically: fix it (QGIS: "
                    "Vector > Geometry Tools > Fix Geometries, then check the result)",
                )
                geoms.append(None)
            else:
                report.note("repaired", f"row {row} ({reason})")
                geoms.append(fixed)
        else:
            geoms.append(geom)
    try:
        series = gpd.GeoSeries(geoms, crs=gdf.crs).to_crs(4326)
    except Exception as exc:  # pyproj errors
        raise InputError(f"{source}: cannot transform the outlines from {crs} to longitude/"
                         f"latitude: {exc}") from None
    series = gpd.GeoSeries(_revalidate(series.to_numpy()), crs=4326)
    present = ~(series.isna() | series.is_empty).to_numpy()
    bounds = series.bounds.to_numpy()
    inside = _in_france(np.nan_to_num(bounds, nan=np.inf))
    if present.any() and not (inside & present).any():
        box = np.nanmin(bounds[present, :2], axis=0).tolist() + np.nanmax(
            bounds[present, 2:], axis=0).tolist()
        raise InputError(
            f"{source}: the outlines are not in France in their declared CRS {crs} (bounds in "
            f"longitude/latitude: {[round(b, 2) for b in box]}): the file's CRS is probably "
            "wrong (e.g. Lambert-93 coordinates in a file declared as EPSG:4326)"
        )
    out: list[shapely.Geometry | None] = []
    for pos, geom in enumerate(series):
        if present[pos] and not inside[pos]:
            report.problem(
                pos + 2, "geometry", [round(b, 3) for b in bounds[pos]],
                f"the outline is not in France (longitude/latitude bounds shown) in the "
                f"file's CRS {crs}",
            )
            out.append(None)
        else:
            out.append(geom if present[pos] else None)
    return out, crs


def _reference_communes(
    communes: gpd.GeoDataFrame | None, outlines: gpd.GeoSeries
) -> gpd.GeoDataFrame:
    if communes is None:
        deps = load_departements()
        hit = deps.sindex.query(outlines.to_numpy(), predicate="intersects")[1]
        codes = sorted(set(deps["departement"].iloc[np.unique(hit)]))
        if not codes:
            return gpd.GeoDataFrame({"insee": [], "nom": []}, geometry=[], crs=4326)
        return load_communes(codes, arrondissements=True)
    if communes.crs is None:
        raise InputError("`communes` has no CRS")
    return communes.to_crs(4326)


def _fractions(
    communes: gpd.GeoDataFrame, outlines: gpd.GeoSeries
) -> pd.DataFrame:
    """Share of each commune's area covered by each outline it intersects (local projection)."""
    geoms = communes.geometry.to_numpy()
    o_pos, c_pos = outlines.sindex.query(geoms, predicate="intersects")[::-1]
    if not len(o_pos):
        return pd.DataFrame({"outline": [], "commune": [], "fraction": []})
    epsg = np.array([_local_epsg(str(c)) for c in communes["insee"].to_numpy()[c_pos]])
    fraction = np.zeros(len(c_pos))
    for code in np.unique(epsg):
        sel = epsg == code
        c_ids, c_inv = np.unique(c_pos[sel], return_inverse=True)
        o_ids, o_inv = np.unique(o_pos[sel], return_inverse=True)
        c_geo = _revalidate(gpd.GeoSeries(geoms[c_ids], crs=4326).to_crs(code).to_numpy())
        o_geo = _revalidate(outlines.iloc[o_ids].to_crs(code).to_numpy())
        inter = shapely.area(shapely.intersection(c_geo[c_inv], o_geo[o_inv]))
        area = shapely.area(c_geo[c_inv])
        fraction[sel] = np.where(area > 0, inter / np.where(area > 0, area, 1), 0)
    return pd.DataFrame(
        {"outline": o_pos, "commune": c_pos, "fraction": np.clip(fraction, 0, 1)}
    )


def _outline_members(
    gdf: gpd.GeoDataFrame,
    *,
    communes: gpd.GeoDataFrame | None,
    threshold: float,
    report: _Report,
) -> tuple[list[_Entry], list[_Member], dict[str, _Group], pd.DataFrame, list[str]]:
    header = [_text(c) for c in gdf.columns if c != gdf.geometry.name]
    cols, ignored = _map_columns(header, report.source, ["cpts"], _OUTLINE_COLUMNS)
    attributes = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    entries = []
    for pos, values in enumerate(attributes.itertuples(index=False, name=None)):
        entries.append(_parse_entry(pos + 2, _getter(list(values), header, cols), report))
    geoms, _ = _check_outlines(gdf, report)
    report.raise_problems()
    groups = _group_cpts(entries, {c: header[i] for c, i in cols.items()}, report)
    report.raise_problems()
    order = list(groups)
    shapes = []
    for key in order:
        rows = set(groups[key].rows)
        shapes.append(_union(
            [g for e, g in zip(entries, geoms, strict=True) if e.row in rows and g is not None]
        ))
    outlines = gpd.GeoSeries(shapes, crs=4326)
    ref = _reference_communes(communes, outlines)
    no_geom = ref[ref.geometry.isna() | ref.geometry.is_empty]
    # communes without a boundary cannot be placed under an outline: say so, never drop silently
    for code, nom in zip(no_geom["insee"], no_geom.get("nom", no_geom["insee"]), strict=True):
        report.note("no_geometry", f"{code} {nom}")
    ref = ref[ref.geometry.notna() & ~ref.geometry.is_empty].reset_index(drop=True)
    frac = _fractions(ref, outlines)
    insee = ref["insee"].astype(str).to_numpy()
    noms = ref["nom"].astype(str).to_numpy() if "nom" in ref else insee
    frac["insee"] = insee[frac["commune"].to_numpy()]
    frac["nom"] = noms[frac["commune"].to_numpy()]
    frac["cpts"] = [groups[order[o]].name for o in frac["outline"]]
    frac["assigned"] = frac["fraction"] >= threshold - 1e-9
    members: list[_Member] = []
    entry_of = {e.row: e for e in entries}
    for o, key in enumerate(order):
        g = groups[key]
        mine = frac[frac["outline"] == o].sort_values("insee")
        chosen = mine[mine["assigned"]]
        if chosen.empty:
            best = mine.sort_values("fraction", ascending=False).head(1)
            hint = (
                f" (largest: {best['nom'].iloc[0]} {best['insee'].iloc[0]}, "
                f"{best['fraction'].iloc[0]:.0%})" if len(best) else
                " (it intersects no commune of the reference)"
            )
            report.problem(
                g.rows[0], "geometry", g.name,
                f"the outline of CPTS {g.name!r} covers no commune at {threshold:.0%} or more "
                f"of its area{hint}; lower `threshold` or check the outline",
            )
            continue
        entry = entry_of[g.rows[0]]
        for code in chosen["insee"]:
            members.append(_Member(entry, code, 1.0, False, code, None))
    report.raise_problems()
    split = _split_communes(frac, threshold)
    if not split.empty:
        for code, part in split.groupby("insee", sort=True):
            desc = ", ".join(f"{c} {f:.0%}" for c, f in zip(part["cpts"], part["fraction"],
                                                               strict=True))
            report.note("split", f"{code} {part['nom'].iloc[0]} ({desc})")
    return entries, members, groups, split, ignored


class _SplitCommunes(pd.DataFrame):
    """A DataFrame that can live in ``attrs``.

    pandas compares the ``attrs`` of frames with ``==`` when it concatenates or merges them;
    with a plain DataFrame in ``attrs`` that comparison raises ("truth value of a DataFrame is
    ambiguous"), so ``pd.concat`` or ``merge`` of membership tables would fail. Comparing this
    frame with another DataFrame returns a bool (:meth:`pandas.DataFrame.equals`); comparing it
    with anything else is element-wise as usual.
    """

    @property
    def _constructor(self) -> type[_SplitCommunes]:
        return _SplitCommunes

    def __eq__(self, other: object) -> Any:
        if isinstance(other, pd.DataFrame):
            return self.equals(other)
        return super().__eq__(other)

    def __ne__(self, other: object) -> Any:
        if isinstance(other, pd.DataFrame):
            return not self.equals(other)
        return super().__ne__(other)

    __hash__ = None  # type: ignore[assignment]


def _split_communes(frac: pd.DataFrame, threshold: float) -> pd.DataFrame:
    listed = frac[frac["fraction"] >= _REPORTED]
    stats = listed.groupby("insee").agg(
        total=("fraction", "sum"),
        assigned=("assigned", "any"),
        significant=("fraction", lambda s: int((s >= _SIGNIFICANT).sum())),
    )
    split = stats[
        ((~stats["assigned"]) & (stats["total"] >= threshold - 1e-9))
        | (stats["significant"] >= 2)
    ].index
    out = listed[listed["insee"].isin(split)]
    out = out.sort_values(["insee", "fraction"], ascending=[True, False])
    out = out[_SPLIT_COLUMNS].reset_index(drop=True)
    return _SplitCommunes(out.astype({"fraction": float, "assigned": bool}))


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------
def read_territories(
    source: str | os.PathLike[str] | pd.DataFrame | gpd.GeoDataFrame,
    *,
    communes: gpd.GeoDataFrame | None = None,
    sheet: str | int | None = None,
    threshold: float = 0.5,
    fuzzy: bool = False,
) -> pd.DataFrame:
    """Read CPTS territories (which communes each CPTS covers) into the membership table.

    Accepted inputs:

    * **long form**: one row per CPTS and commune, with a CPTS name column and a commune column
      (INSEE code, or name resolved with :mod:`cpts_geo.codes`), and optionally ``cpts_id``,
      ``departement`` (restricts name matching; a cell may list several: ``"42,69"``),
      ``status``, ``status_date``, ``share`` and ``source``. Headers are matched in French or
      English, ignoring case, accents, spaces and underscores (``"Code INSEE"``, ``"nom
      commune"``, ``"statut"``, ``"date de signature"``, ``"quote-part"``...). Title rows above
      the header are skipped; merged Excel cells (a CPTS name merged over its communes) are
      filled.
    * **wide form**: one row per CPTS with all its communes in one cell, separated by commas,
      semicolons or new lines (commune names never contain them; ``"A et B"`` at the end of a
      list is split when it is not itself a commune name).
    * **outlines**: a GeoJSON or GeoPackage (or GeoDataFrame) of CPTS polygons. Each commune is
      assigned to every CPTS whose outline covers at least ``threshold`` of its area, computed
      in Lambert-93 (EPSG:2154) or in the local projection overseas (EPSG:5490 Antilles, 2972
      Guyane, 2975 La Réunion, 4471 Mayotte). Features of the same CPTS are merged. The file
      must declare its CRS; outlines outside France are an error (a wrong CRS). An invalid
      outline is repaired with :func:`shapely.make_valid` (with a warning) when that changes its
      area by less than 1 % (a ring touching itself), and is an error otherwise (a bow-tie).
      Paris, Lyon and Marseille are assigned by municipal arrondissement. A GeoJSON of points
      or without geometry is read as a table.

    Files: CSV (``,``, ``;`` or tab, sniffed; UTF-8 with or without BOM, or Windows-1252),
    Excel ``.xlsx``, GeoJSON, GeoPackage. Row numbers are those a spreadsheet user sees (the
    header is row 1 when it is the first row); for a (Geo)DataFrame, GeoJSON or GeoPackage,
    the first row or feature is row 2.

    Parameters
    ----------
    source : str, path, pandas.DataFrame or geopandas.GeoDataFrame
        The file, or a table/outlines already in memory (never modified).
    communes : geopandas.GeoDataFrame, optional
        Reference communes (as returned by :func:`cpts_geo.load_communes`). For outlines, the
        communes to assign (default: the bundled communes and arrondissements of the
        départements the outlines touch). For tables, its départements restrict name matching on
        rows without a département.
    sheet : str or int, optional
        Excel sheet (name or index; default the first), or GeoPackage layer.
    threshold : float
        Outlines only: the share of a commune's area an outline must cover, in (0, 1].
    fuzzy : bool
        Accept a single close match for a misspelt commune name, with a warning.

    Returns
    -------
    pandas.DataFrame
        One row per (CPTS, commune), in input order, with columns ``cpts`` (name), ``cpts_id``
        (from the file, else a slug of the name such as ``"vallee-du-gier"``), ``insee`` (current
        code, possibly a municipal arrondissement such as ``"69383"``), ``nom`` (official name),
        ``share`` (float in (0, 1]: the part of the commune's population in the CPTS, 1.0 by
        default; ``"50 %"`` reads as 0.5), ``status`` (ordered categorical of
        :data:`STATUSES`, NA when absent; a status given on one row of a CPTS applies to all its
        rows), ``status_date`` (datetime64, NaT when absent), ``source`` (str or NA) and ``row``
        (row in the input). ``attrs`` holds ``source`` (file name or ``"DataFrame"``),
        ``n_cpts``, ``n_communes``, ``form`` (``"long"``, ``"wide"`` or ``"outlines"``),
        ``ignored_columns``, ``cog_year``, ``sheet`` (Excel); for outlines also ``threshold`` and
        ``split_communes``: a DataFrame (``insee``, ``nom``, ``cpts``, ``fraction``,
        ``assigned``) of the communes no single outline covers at ``threshold`` but the outlines
        do together, or that several outlines cover at 10 % or more each.

    Raises
    ------
    TerritoryError
        Listing every problem of the input with its row, column and value: unknown code,
        unknown or ambiguous name (with the closest candidates), commune outside the row's
        département, duplicate (CPTS, commune), share out of range, unknown status, bad date,
        missing CPTS name, empty commune, conflicting statuses, dates or ids within a CPTS, an id
        shared by two CPTS, invalid or misplaced outlines, outlines covering no commune.
    InputError
        If the input cannot be read: file not found, unknown extension, empty file, malformed
        CSV, Excel or JSON, missing columns (the message lists the columns found and the
        accepted headers), outlines without CRS or not in France.

    Warns
    -----
    CptsGeoWarning
        When a code of a commune déléguée, associée or merged commune (or a former name) is
        resolved to the current commune, a name is matched approximately (``fuzzy``), a CPTS
        name is spelt in several ways, a row's code and name disagree, an outline is repaired,
        or communes are split between outlines.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"CPTS": ["Vallée du Gier"] * 2, "Code INSEE": [42207, "42110"],
    ...                       "Statut": ["aci signe", None]})
    >>> members = read_territories(table)
    >>> members[["insee", "nom", "status", "row"]].to_numpy().tolist()
    [['42207', 'Saint-Chamond', 'ACI signé', 2], ['42110', "L'Horme", 'ACI signé', 3]]
    >>> members["cpts_id"].unique().tolist()
    ['vallee-du-gier']
    """
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not (
        0 < threshold <= 1
    ):
        raise InputError(f"`threshold` was {threshold!r} but is expected to be in (0, 1]")
    if communes is not None and (
        not isinstance(communes, gpd.GeoDataFrame) or "insee" not in communes.columns
    ):
        raise InputError(
            "`communes` is expected to be a GeoDataFrame with an 'insee' column, as returned "
            "by cpts_geo.load_communes"
        )
    name, loaded = _load(source, sheet)
    report = _Report(loaded.source if isinstance(loaded, _Table) else name)
    attrs: dict[str, Any] = {"source": name}
    if isinstance(loaded, _Table):
        if loaded.sheet is not None:
            attrs["sheet"] = loaded.sheet
        cols, ignored = _map_columns(
            loaded.header, loaded.source, ["cpts", "commune"], list(_ALIASES)
        )
        if not loaded.rows:
            raise InputError(
                f"{loaded.source}: the file has a header (row {loaded.header_row}) but no data "
                "rows"
            )
        scope = None
        if communes is not None and "departement" in communes.columns:
            scope = {str(d) for d in communes["departement"].dropna().unique()}
        entries, members, wide = _table_members(
            loaded, cols, scope=scope, fuzzy=fuzzy, report=report
        )
        titles = {c: loaded.header[i] for c, i in cols.items()}
        groups = _group_cpts(entries, titles, report)
        _check_members(members, report)
        report.raise_problems()
        attrs["form"] = "wide" if wide else "long"
    else:
        entries, members, groups, split, ignored = _outline_members(
            loaded, communes=communes, threshold=threshold, report=report
        )
        attrs.update(form="outlines", threshold=threshold, split_communes=split)
    report.warn()
    noms: dict[str, str] = {}
    if communes is not None and "nom" in communes.columns:
        noms = dict(zip(communes["insee"].astype(str), communes["nom"].astype(str), strict=True))
    current = _index().current
    out_rows = []
    for m in members:
        assert m.entry.cpts is not None
        g = groups[_slug(m.entry.cpts)]
        unit = current.get(m.insee)
        nom = noms.get(m.insee) or (unit.nom if unit is not None else "")
        out_rows.append((
            g.name, g.cpts_id, m.insee, nom,
            m.share, g.status, g.status_date, m.entry.source, m.entry.row,
        ))
    columns = list(zip(*out_rows, strict=True)) if out_rows else [()] * len(_OUTPUT_COLUMNS)
    data = dict(zip(_OUTPUT_COLUMNS, columns, strict=True))
    frame = pd.DataFrame({
        "cpts": pd.Series(data["cpts"], dtype="str"),
        "cpts_id": pd.Series(data["cpts_id"], dtype="str"),
        "insee": pd.Series(data["insee"], dtype="str"),
        "nom": pd.Series(data["nom"], dtype="str"),
        "share": pd.Series(data["share"], dtype="float64"),
        "status": pd.Series(pd.Categorical(data["status"], dtype=_STATUS_DTYPE)),
        "status_date": pd.Series(
            [pd.NaT if d is None else d for d in data["status_date"]], dtype="datetime64[ns]"
        ),
        "source": pd.Series(data["source"], dtype="str"),
        "row": pd.Series(data["row"], dtype="int64"),
    })
    frame.attrs = {
        **attrs,
        "n_cpts": int(frame["cpts_id"].nunique()),
        "n_communes": int(frame["insee"].nunique()),
        "ignored_columns": ignored,
        "cog_year": _cog_year(),
    }
    return frame
