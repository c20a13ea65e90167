"""Read the files planners keep into raw tables (CSV, Excel) or outlines (GeoJSON, GeoPackage).

This is the file-reading edge of :mod:`cpts_geo.io`: it turns bytes into cells (or polygons),
with errors naming the file; checking the cells is :mod:`cpts_geo.membership`'s job.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import re
import warnings
from pathlib import Path

import geopandas as gpd
import pandas as pd

from ..errors import InputError
from ..membership import (
    _COMMUNE_COLUMNS,
    _HEADER_TO_COLUMN,
    RawTable,
    _header_key,
    _is_empty,
    _text,
    frame_table,
)

__all__ = ["EXTENSIONS", "load_source"]

#: File extensions read, and how.
EXTENSIONS = {
    ".csv": "csv", ".txt": "csv", ".tsv": "csv",
    ".xlsx": "excel", ".xlsm": "excel",
    ".geojson": "geojson", ".json": "geojson",
    ".gpkg": "gpkg",
}


def _find_header(
    source: str, raw: list[tuple[int, list[object]]]
) -> RawTable:
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
    return RawTable(source, header, rows, header_row)



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


def _read_csv(path: Path, name: str) -> RawTable:
    data = path.read_bytes()
    if not data.strip():
        raise InputError(f"{name}: the file is empty")
    text = _decode(data, name)
    if not text.strip(" \t\r\n\ufeff"):
        raise InputError(f"{name}: the file is empty")
    delimiter = "\t" if path.suffix.lower() == ".tsv" else _sniff_delimiter(text)
    if m := re.match(r"sep=(.)\r?\n", text):  # Excel's delimiter hint, hidden when opened
        delimiter, text = m[1], text[m.end():]
    fast = _frame_of_text(text, delimiter, name)
    if fast is not None:
        return fast
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


def _frame_of_text(text: str, delimiter: str, name: str) -> RawTable | None:
    """Read a delimited text at once with pandas' C parser (None: use the careful reader).

    Only for the plain case: every line a record (no quoted new line), no blank line, no title
    rows above the header; anything else goes to :mod:`csv`, which keeps the row numbers a
    spreadsheet user sees and reports a malformed file precisely.
    """
    if '"' in text and re.search(r'"[^"]*\n', text):  # maybe a quoted new line: careful path
        return None
    try:
        frame = pd.read_csv(io.StringIO(text), sep=delimiter, dtype=str, header=None,
                            keep_default_na=False, skip_blank_lines=False, engine="c",
                            quotechar='"')
    except (pd.errors.ParserError, ValueError):
        return None
    if frame.empty:
        return None
    frame = frame.fillna("")
    frame.index = pd.RangeIndex(1, 1 + len(frame))  # one record a line: the line number
    header = [str(v).strip() for v in frame.iloc[0]]
    columns = {_HEADER_TO_COLUMN.get(_header_key(v)) for v in header if v}
    if not ("cpts" in columns and columns & set(_COMMUNE_COLUMNS)):
        return None  # title rows above the header, or a header to report: careful path
    while header and not header[-1]:
        header.pop()
    data = frame.iloc[1:].apply(lambda col: col.str.strip())
    data = data[(data != "").any(axis=1)]
    return RawTable(name, header, header_row=1, frame=data)


def _read_excel(path: Path, name: str, sheet: str | int | None) -> RawTable:
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
    return RawTable(table.source, table.header, table.rows, table.header_row, ws.title)


def _read_geojson(path: Path, name: str) -> gpd.GeoDataFrame | RawTable:
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
        return frame_table(pd.DataFrame(doc), name)  # a JSON table: a list of records
    if not isinstance(doc, dict) or doc.get("type") not in ("FeatureCollection", "Feature"):
        raise InputError(
            f"{name}: not a GeoJSON FeatureCollection (top-level 'type' is "
            f"{doc.get('type') if isinstance(doc, dict) else type(doc).__name__!r})"
        )
    if doc.get("type") == "FeatureCollection" and not doc.get("features"):
        raise InputError(f"{name}: the GeoJSON has no features")
    return _read_ogr(path, name, None)


def _read_ogr(path: Path, name: str, layer: str | int | None) -> gpd.GeoDataFrame | RawTable:
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


def _geo_or_table(df: pd.DataFrame, name: str) -> gpd.GeoDataFrame | RawTable:
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
    return frame_table(df, name)


def load_source(
    source: str | os.PathLike[str] | pd.DataFrame, sheet: str | int | None
) -> tuple[str, gpd.GeoDataFrame | RawTable]:
    """Read one territory input into raw cells or outlines; return its name and the content.

    A (Geo)DataFrame is taken as it is (outlines when it holds polygons); a file is read by its
    extension (:data:`EXTENSIONS`). Errors name the file.
    """
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
    kind = EXTENSIONS.get(path.suffix.lower())
    if kind is None:
        hint = " (save the workbook as .xlsx)" if path.suffix.lower() in (".xls", ".ods") else ""
        raise InputError(
            f"{name}: unknown file type {path.suffix or '(no extension)'!r}{hint}; expected "
            f"one of {', '.join(sorted(EXTENSIONS))}"
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


