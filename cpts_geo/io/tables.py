"""Read the files planners keep into raw tables (CSV, Excel) or outlines (GeoJSON, GeoPackage).

This is the file-reading edge of :mod:`cpts_geo.io`: it turns bytes into cells (or polygons),
with errors naming the file; checking the cells is :mod:`cpts_geo.membership`'s job.

Every file is bounded before it is read (:class:`Limits`): its size, the decompressed size of a
workbook (an ``.xlsx`` is a zip), and the rows and cells of a table. A workbook's sheet is
streamed cell by cell, so that a stray value in ``ZZ50000`` or a merged range to the last cell
never becomes a dense rectangle of millions of cells.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import os
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from ..errors import InputError, ResourceLimitError, TerritoryError
from ..membership import (
    _COMMUNE_COLUMNS,
    _HEADER_TO_COLUMN,
    FormulaWithoutValue,
    RawTable,
    _header_key,
    _is_empty,
    _text,
    frame_table,
)

__all__ = ["EXTENSIONS", "MAX_BYTES", "MAX_CELLS", "MAX_ROWS", "Limits", "load_source"]

#: Default limit on the size of an input file, and on the decompressed size of a workbook.
MAX_BYTES = 256 * 2**20
#: Default limit on the rows of a table (a row number beyond it, in a workbook).
MAX_ROWS = 200_000
#: Default limit on the cells of a table read into memory (rows times columns).
MAX_CELLS = 5_000_000


@dataclass(frozen=True)
class Limits:
    """Bounds on what reading one input may cost, each stated in the error that enforces it.

    Attributes
    ----------
    max_bytes : int
        Size of a file, and total decompressed size of a workbook's parts.
    max_rows : int
        Rows of a table; in a workbook, the last row holding a value.
    max_cells : int
        Cells of a table held in memory (rows times the header's columns, merged ranges
        filled included).
    """

    max_bytes: int = MAX_BYTES
    max_rows: int = MAX_ROWS
    max_cells: int = MAX_CELLS

    def check(self) -> None:
        """Refuse limits that are not positive whole numbers."""
        for name in ("max_bytes", "max_rows", "max_cells"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InputError(f"`{name}` was {value!r} but is expected to be a positive "
                                 "whole number")


def _megabytes(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def _over(source: str, what: str, limit: int, name: str, advice: str = "is it the right "
          "file?") -> ResourceLimitError:
    """The error for an input beyond a limit: what, the limit, and how to raise it."""
    shown = _megabytes(limit) if name == "max_bytes" else f"{limit:,}"
    flag = "--" + name.replace("_", "-")
    return ResourceLimitError(
        f"{source}: {what}, more than the limit of {shown} (`{name}={limit}`): {advice} To read "
        f"it anyway, raise the limit: read_territories(..., {name}=...), or {flag} on the "
        "command line"
    )

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


def _read_csv(path: Path, name: str, limits: Limits) -> RawTable:
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
        assert fast.frame is not None
        _check_table_size(name, len(fast.frame), len(fast.header), limits)
        return fast
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    raw: list[tuple[int, list[object]]] = []
    cells = 0
    try:
        for number, record in enumerate(reader, start=1):
            raw.append((number, list(record)))
            cells += len(record)
            if len(raw) > limits.max_rows + 20 or cells > limits.max_cells:
                _check_table_size(name, len(raw), max(1, cells // len(raw)), limits)
    except csv.Error as exc:
        raise InputError(
            f"{name}: malformed CSV near line {reader.line_num}: {exc} (a quote opened and "
            "not closed?)"
        ) from None
    return _find_header(name, raw)


def _check_table_size(name: str, rows: int, columns: int, limits: Limits) -> None:
    if rows > limits.max_rows:
        raise _over(name, f"the table has {rows:,} rows or more", limits.max_rows, "max_rows")
    if rows * columns > limits.max_cells:
        raise _over(name, f"the table has {rows:,} rows of {columns:,} columns, "
                    f"{rows * columns:,} cells", limits.max_cells, "max_cells")


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


def _read_excel(path: Path, name: str, sheet: str | int | None, limits: Limits) -> RawTable:
    """Read one sheet of a workbook, streamed and bounded (see :class:`Limits`).

    Without ``sheet``, the active sheet is read when it is visible, else the first visible one:
    a hidden sheet (an old list kept there) is read only when named. ``RawTable.sheet`` says
    which sheet was read.
    """
    import openpyxl

    _check_zip(path, name, limits)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl style and extension chatter
            book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile, KeyError, XML errors... on bad files
        raise InputError(
            f"{name}: cannot be read as an Excel workbook (.xlsx): {type(exc).__name__}: {exc}"
        ) from None
    try:
        ws = _choose_sheet(book, name, sheet)
        sheets = _describe_sheets(book, ws)
        several = len(book.sheetnames) > 1
        source = f"{name} [sheet {ws.title!r}]" if several or sheet is not None else name
        try:
            cells, merged = _stream_sheet(book, ws, source, limits)
        except (ResourceLimitError, TerritoryError):
            raise
        except Exception as exc:  # malformed XML inside the zip
            raise InputError(
                f"{source}: cannot be read as an Excel sheet: {type(exc).__name__}: {exc}"
            ) from None
    finally:
        book.close()
    if not cells:
        raise InputError(f"{source}: the sheet is empty" + (f"; {sheets}" if several else ""))
    _fill_merged(cells, merged, source, limits)
    table = _sheet_table(source, cells, limits)
    table.sheet = ws.title
    table.sheets_note = sheets if several else None
    return table


def _check_zip(path: Path, name: str, limits: Limits) -> None:
    """Refuse a workbook whose parts decompress beyond ``max_bytes`` (before parsing any)."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputError(
            f"{name}: cannot be read as an Excel workbook (.xlsx): {type(exc).__name__}: {exc}"
        ) from None
    total = sum(i.file_size for i in infos)
    if total > limits.max_bytes:
        biggest = max(infos, key=lambda i: i.file_size)
        raise _over(name, f"the workbook ({_megabytes(path.stat().st_size)}) decompresses to "
                    f"{_megabytes(total)} (its part {biggest.filename!r}: "
                    f"{_megabytes(biggest.file_size)}), checked before reading it",
                    limits.max_bytes, "max_bytes")


def _choose_sheet(book: Any, name: str, sheet: str | int | None) -> Any:
    worksheets = list(book.worksheets)
    if sheet is None:
        visible = [ws for ws in worksheets if ws.sheet_state == "visible"]
        active = book.active
        if active is not None and any(active is ws for ws in visible):
            return active
        if not visible:
            raise InputError(
                f"{name}: every sheet is hidden ({', '.join(map(repr, book.sheetnames))}): "
                "name the one to read with sheet= (command line: --sheet NAME)"
            )
        return visible[0]
    if isinstance(sheet, str) and sheet not in book.sheetnames and re.fullmatch(r"-?\d+", sheet):
        sheet = int(sheet)  # "--sheet 1" on the command line, when no sheet is named "1"
    if isinstance(sheet, str):
        if sheet not in book.sheetnames or not any(ws.title == sheet for ws in worksheets):
            raise InputError(
                f"{name}: no sheet named {sheet!r}; the sheets are {book.sheetnames}"
            )
        return book[sheet]
    if isinstance(sheet, int) and not isinstance(sheet, bool):
        if not -len(worksheets) <= sheet < len(worksheets):
            raise InputError(
                f"{name}: sheet index {sheet} is out of range; the workbook has "
                f"{len(worksheets)} sheet(s): {book.sheetnames}"
            )
        return worksheets[sheet]
    raise InputError(f"`sheet` was {sheet!r} but is expected to be a sheet name or index")


def _describe_sheets(book: Any, read: Any) -> str:
    parts = []
    for ws in book.worksheets:
        tags = []
        if ws is read:
            tags.append("read")
        if ws.sheet_state != "visible":
            tags.append("hidden")
        parts.append(repr(ws.title) + (f" ({', '.join(tags)})" if tags else ""))
    return (f"the workbook's sheets are {', '.join(parts)}: choose one with sheet='name' "
            "(command line: --sheet NAME)")


_SHEET_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_ROW = f"{{{_SHEET_NS}}}row"
_SHEET_DATA = f"{{{_SHEET_NS}}}sheetData"
_MERGE_CELLS = f"{{{_SHEET_NS}}}mergeCells"
_MERGE_CELL = f"{{{_SHEET_NS}}}mergeCell"
_FORMULA = f"{{{_SHEET_NS}}}f"
_VALUE = f"{{{_SHEET_NS}}}v"


def _stream_sheet(
    book: Any, ws: Any, source: str, limits: Limits
) -> tuple[dict[int, dict[int, object]], list[str]]:
    """The non-empty cells of a sheet, ``{row: {column: value}}``, and its merged ranges.

    The sheet's XML is streamed: memory holds the cells with a value, never the rectangle the
    sheet claims (its ``dimension`` is not trusted). A value beyond ``max_rows`` stops the
    reading at once, naming its cell.
    """
    from openpyxl.utils.cell import column_index_from_string, get_column_letter
    from openpyxl.worksheet._reader import WorkSheetParser
    from openpyxl.xml.functions import iterparse

    def column_index(ref: str) -> int:
        return column_index_from_string(ref.rstrip("0123456789"))

    class Parser(WorkSheetParser):
        def parse_cell(self, element: Any) -> dict[str, Any]:
            if element.get("t") == "inlineStr" and element.get("r"):  # fast: no rich text objects
                self.col_counter = column_index(element.get("r"))
                return {"row": self.row_counter, "column": self.col_counter,
                        "value": _inline_text(element), "data_type": "s"}
            cell: dict[str, Any] = super().parse_cell(element)
            formula = element.find(_FORMULA)
            saved = element.find(_VALUE)
            # no saved result: no <v>, or an empty one where only a text result may be empty
            unsaved = saved is None or (not saved.text and element.get("t") != "str")
            if cell["value"] is None and formula is not None and unsaved:
                text = formula.text
                cell["value"] = FormulaWithoutValue(
                    f"={text}" if text else f"(formula of cell "
                    f"{get_column_letter(cell['column'])}{cell['row']})")
            return cell

    cells: dict[int, dict[int, object]] = {}
    merged: list[str] = []
    count = 0
    with book._archive.open(ws._worksheet_path) as src:
        parser = Parser(src, ws._shared_strings, data_only=True, epoch=book.epoch,
                        date_formats=book._date_formats,
                        timedelta_formats=book._timedelta_formats)
        parents: list[Any] = []
        for event, element in iterparse(src, events=("start", "end")):
            tag = element.tag
            if event == "start":
                if tag in (_SHEET_DATA, _MERGE_CELLS):
                    parents.append(element)
                continue
            if tag == _ROW:
                row, values = parser.parse_row(element)
                for cell in values:
                    value = cell["value"]
                    if value is None or (isinstance(value, str) and not value.strip()):
                        continue
                    if row > limits.max_rows:
                        ref = f"{get_column_letter(cell['column'])}{row}"
                        raise _over(source, f"cell {ref} holds {value!r}: the sheet reaches row "
                                    f"{row:,}", limits.max_rows, "max_rows",
                                    "a stray value far below the table? Delete it.")
                    count += 1
                    if count > limits.max_cells:
                        raise _over(source, f"the sheet holds {count:,} values or more",
                                    limits.max_cells, "max_cells")
                    cells.setdefault(row, {})[cell["column"]] = (
                        value.strip() if isinstance(value, str) else value)
                _clear(parents)
            elif tag == _MERGE_CELL:
                merged.append(str(element.get("ref", "")))
                if len(merged) > limits.max_cells:
                    raise _over(source, f"the sheet has {len(merged):,} merged ranges or more",
                                limits.max_cells, "max_cells")
                _clear(parents)
            elif tag in (_SHEET_DATA, _MERGE_CELLS) and parents:
                parents.pop()
    return cells, merged


_INLINE = f"{{{_SHEET_NS}}}is"
_TEXT = f"{{{_SHEET_NS}}}t"
_RUN = f"{{{_SHEET_NS}}}r"


def _inline_text(element: Any) -> str | None:
    """The text of an inline-string cell.

    Its ``<t>``, or the ``<t>`` of its runs; phonetic guides are left out.
    """
    box = element.find(_INLINE)
    if box is None:
        return None
    parts = []
    for child in box:
        if child.tag == _TEXT:
            parts.append(child.text or "")
        elif child.tag == _RUN:
            t = child.find(_TEXT)
            parts.append("" if t is None or t.text is None else t.text)
    return "".join(parts)


def _clear(parents: list[Any]) -> None:
    """Drop the children already read, so that memory stays flat however long the sheet."""
    if parents:
        del parents[-1][:]


def _fill_merged(cells: dict[int, dict[int, object]], merged: list[str], source: str,
                 limits: Limits) -> None:
    """Give every cell of a merged range its top-left value (a CPTS name merged over rows).

    Ranges are clipped to the rows and columns that hold values: a range to the sheet's last
    cell fills nothing beyond the table.
    """
    from openpyxl.utils.cell import range_boundaries

    if not merged:
        return
    last_row = max(cells)
    last_col = max(c for row in cells.values() for c in row)
    filled = 0
    for ref in merged:
        try:
            min_col, min_row, max_col, max_row = range_boundaries(ref)
        except (ValueError, TypeError):
            continue
        top = cells.get(min_row, {}).get(min_col)
        if top is None:
            continue
        rows = range(min_row, min(max_row, last_row) + 1)
        cols = range(min_col, min(max_col, last_col) + 1)
        filled += len(rows) * len(cols)
        if filled > limits.max_cells:
            raise _over(source, f"the merged ranges (such as {ref}) fill {filled:,} cells or "
                        "more within the table", limits.max_cells, "max_cells")
        for r in rows:
            for c in cols:
                cells.setdefault(r, {})[c] = top


def _sheet_table(source: str, cells: dict[int, dict[int, object]], limits: Limits) -> RawTable:
    """Header and rows of a sheet's sparse cells; cells beyond the header go to ``extras``."""
    from openpyxl.utils.cell import get_column_letter

    order = sorted(cells)
    header_row = order[0]
    for r in order[:20]:
        columns = {_HEADER_TO_COLUMN.get(_header_key(v)) for v in cells[r].values()}
        if "cpts" in columns and columns & set(_COMMUNE_COLUMNS):
            header_row = r
            break
    titles = cells[header_row]
    width = max(titles)
    data = [r for r in order if r > header_row]
    if len(data) * width > limits.max_cells:
        raise _over(source, f"the table (header in row {header_row}, reaching column "
                    f"{get_column_letter(width)}) has {len(data):,} rows of {width:,} columns, "
                    f"{len(data) * width:,} cells", limits.max_cells, "max_cells")
    header = ["" if c not in titles else _text(titles[c]) for c in range(1, width + 1)]
    rows: list[tuple[int, list[object]]] = []
    extras: dict[int, list[tuple[str, object]]] = {}
    for r in data:
        row = cells[r]
        rows.append((r, [row.get(c) for c in range(1, width + 1)]))
        beyond = sorted(c for c in row if c > width)
        if beyond:
            extras[r] = [(f"{get_column_letter(c)}{r}", row[c]) for c in beyond]
    return RawTable(source, header, rows, header_row, extras=extras)


class _NotJson(ValueError):
    pass


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotJson(f"the number {text[:20]}… is too large to be a coordinate or a value")
    return value


def _constant(text: str) -> float:
    raise _NotJson(f"{text} is not a JSON value (NaN or infinite coordinates?)")


def _load_json(data: bytes, name: str) -> Any:
    try:
        return json.loads(_decode(data, name, "GeoJSON"), parse_float=_finite,
                          parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{name}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except _NotJson as exc:
        raise InputError(f"{name}: not valid JSON: {exc}") from None
    except RecursionError:
        raise InputError(
            f"{name}: the JSON is nested too deeply to be read (thousands of levels of lists or "
            "objects): this is no territory file"
        ) from None
    except ValueError as exc:  # a number of thousands of digits
        raise InputError(f"{name}: not valid JSON: {exc}") from None


def _nested(records: list[Any]) -> dict[tuple[int, str], object]:
    """Positions of the values that are JSON objects or lists: ``{(record, key): value}``."""
    return {(i, str(k)): v for i, rec in enumerate(records) if isinstance(rec, dict)
            for k, v in rec.items() if isinstance(v, dict | list)}


def _read_geojson(path: Path, name: str) -> gpd.GeoDataFrame | RawTable:
    data = path.read_bytes()
    if not data.strip():
        raise InputError(f"{name}: the file is empty")
    doc = _load_json(data, name)
    if isinstance(doc, list) and doc and all(isinstance(d, dict) for d in doc):
        return frame_table(pd.DataFrame(doc), name)  # a JSON table: a list of records
    if not isinstance(doc, dict) or doc.get("type") not in ("FeatureCollection", "Feature"):
        raise InputError(
            f"{name}: not a GeoJSON FeatureCollection (top-level 'type' is "
            f"{doc.get('type') if isinstance(doc, dict) else type(doc).__name__!r})"
        )
    if doc.get("type") == "FeatureCollection" and not doc.get("features"):
        raise InputError(f"{name}: the GeoJSON has no features")
    _check_declared_crs(doc, name)
    features = doc.get("features") if doc.get("type") == "FeatureCollection" else [doc]
    if not isinstance(features, list) or not all(isinstance(f, dict) for f in features):
        raise InputError(f"{name}: 'features' is not a list of GeoJSON features")
    nested = _nested([f.get("properties") or {} for f in features])
    loaded = _read_ogr(path, name, None)
    if nested:  # GDAL turns them into JSON text: give the validator the values as they were
        frame = loaded if isinstance(loaded, gpd.GeoDataFrame) else None
        if frame is None:
            assert isinstance(loaded, RawTable)
            positions = {h: i for i, h in enumerate(loaded.header)}
            for (i, key), value in nested.items():
                if key in positions and i < len(loaded.rows):
                    loaded.rows[i][1][positions[key]] = value
        else:
            for (i, key), value in nested.items():
                if key in frame.columns and i < len(frame):
                    cells = frame[key].astype(object).tolist()
                    cells[i] = value
                    frame[key] = pd.Series(cells, index=frame.index, dtype=object)
    return loaded


def _check_declared_crs(doc: dict[str, Any], name: str) -> None:
    """A ``crs`` member (GeoJSON 2008) must name a CRS PROJ knows: never assume degrees."""
    crs = doc.get("crs")
    if crs is None:
        return
    label = crs.get("properties", {}).get("name") if isinstance(crs, dict) and isinstance(
        crs.get("properties"), dict) else None
    if not isinstance(label, str):
        raise InputError(f"{name}: the 'crs' member {str(crs)[:80]!r} names no coordinate "
                         "reference system: save the file in EPSG:4326 without it, or with "
                         "'EPSG:2154'")
    import pyproj

    try:
        pyproj.CRS.from_user_input(label)
    except pyproj.exceptions.CRSError:
        raise InputError(
            f"{name}: the file declares the coordinate reference system {label!r}, which is "
            "unknown: its coordinates cannot be placed (they are not assumed to be longitude/"
            "latitude); save the file in EPSG:4326 or EPSG:2154 (Lambert-93)"
        ) from None


def _read_ogr(path: Path, name: str, layer: str | int | None) -> gpd.GeoDataFrame | RawTable:
    import pyogrio

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # GDAL's notes, NaN coordinates (checked later)
            if path.suffix.lower() == ".gpkg" and layer is None:
                layers = [str(n) for n, _ in pyogrio.list_layers(path) if n != "layer_styles"]
                if len(layers) > 1:
                    raise InputError(
                        f"{name}: the GeoPackage has several layers {layers}: choose one with "
                        "sheet='layer name' (command line: --sheet NAME)"
                    )
                layer = layers[0] if layers else None
            elif isinstance(layer, str) and re.fullmatch(r"-?\d+", layer) and layer not in [
                    str(n) for n, _ in pyogrio.list_layers(path)]:
                layer = int(layer)  # a position given on the command line
            gdf = gpd.read_file(path, layer=layer, engine="pyogrio")
    except InputError:
        raise
    except Exception as exc:  # pyogrio.errors.DataSourceError, DataLayerError...
        what = "GeoPackage" if path.suffix.lower() == ".gpkg" else "GeoJSON"
        detail = str(exc).split("; It might help")[0]  # drop GDAL's driver-prefix advice
        raise InputError(
            f"{name}: cannot be read as a {what} file: {type(exc).__name__}: {detail}"
        ) from None
    unreadable_crs = [str(w.message) for w in caught if "Unable to parse srs" in str(w.message)]
    if unreadable_crs and getattr(gdf, "crs", None) is None:
        raise InputError(
            f"{name}: the file declares a coordinate reference system that cannot be read "
            f"({unreadable_crs[0]}): its coordinates cannot be placed (they are not assumed to "
            "be longitude/latitude); save the file in EPSG:2154 (Lambert-93) or EPSG:4326"
        )
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
        other = types - {"Point", "MultiPoint"}
        if other:  # a GeometryCollection is no outline, and no table either
            raise InputError(
                f"{name}: the geometries are {', '.join(sorted(other))}; CPTS outlines must be "
                "polygons or multipolygons (in QGIS: Vector > Geometry Tools > Multipart to "
                "Singleparts, keep the polygons, then Collect Geometries)"
            )
        df = pd.DataFrame(df.drop(columns=df.geometry.name))
    return frame_table(df, name)


def load_source(
    source: str | os.PathLike[str] | pd.DataFrame, sheet: str | int | None,
    limits: Limits | None = None,
) -> tuple[str, gpd.GeoDataFrame | RawTable]:
    """Read one territory input into raw cells or outlines; return its name and the content.

    A (Geo)DataFrame is taken as it is (outlines when it holds polygons); a file is read by its
    extension (:data:`EXTENSIONS`), within ``limits``. Errors name the file.
    """
    limits = limits or Limits()
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
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise _over(name, f"the file is {_megabytes(size)} ({size:,} bytes)", limits.max_bytes,
                    "max_bytes")
    if kind == "csv":
        return name, _read_csv(path, name, limits)
    if kind == "excel":
        return name, _read_excel(path, name, sheet, limits)
    if kind == "geojson":
        return name, _read_geojson(path, name)
    return name, _read_ogr(path, name, sheet)


