"""Rendering the site's files: HTML pages (Jinja templates, autoescaped), downloads, assets.

Every text from an input file reaches the pages through Jinja's autoescaping; the CSV downloads
neutralise cells that a spreadsheet would run as formulas. Each table is downloadable for
programs (CSV with commas and points, its vintage in a ``-metadata.json`` sidecar; GeoJSON when
it has geometries) and for Excel (``_excel.csv``: semicolons, BOM, French labels, percentages;
and one ``.xlsx`` workbook per page, with a "Source" sheet).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from importlib.resources import files
from json.encoder import encode_basestring  # what json.dumps writes a text with
from pathlib import Path
from typing import Any

import geopandas as gpd
import jinja2
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .._about import __version__
from ..io.excel import (
    METRIC_LABELS,
    SheetRows,
    is_rate_metric,
    readable,
    source_fr,
    write_workbook,
)
from ..io.writers import (
    csv_metadata,
    dump_json,
    holds_any,
    iso_dates,
    join_text,
    jsonable,
    number_array,
    number_text,
    records,
    spreadsheet_safe,
    text_array,
    text_where,
)

__all__ = ["Table", "environment", "fr_datetime", "write_downloads", "write_json", "write_table"]

_MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
           "septembre", "octobre", "novembre", "décembre")


def fr_datetime(iso: str, *, time: bool = True) -> str:
    """An ISO date-time as French text, at Paris time: ``"23 novembre 2026 à 3 h 00"``.

    Examples
    --------
    >>> fr_datetime("2026-11-23T02:00:00+00:00")
    '23 novembre 2026 à 3 h 00'
    >>> fr_datetime("2026-07-01T00:05:00+00:00", time=False)
    '1er juillet 2026'
    """
    when = datetime.fromisoformat(iso)
    try:
        from zoneinfo import ZoneInfo

        when = when.astimezone(ZoneInfo("Europe/Paris"))
    except Exception:  # no time zone database: say UTC  # pragma: no cover
        pass
    day = "1er" if when.day == 1 else str(when.day)
    text = f"{day} {_MONTHS[when.month - 1]} {when.year}"
    if time:
        text += f" à {when.hour} h {when.minute:02d}"
        if when.utcoffset() is not None and when.tzname() in ("UTC", "+00:00", None):
            text += " UTC"
    return text


def _num(value: Any, digits: int = 0) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, bool):
        return "oui" if value else "non"
    if isinstance(value, int | float):
        text = f"{value:,.{digits}f}"
        return text.replace(",", "\u202f").replace(".", ",")
    return str(value)


def _pct(value: Any) -> str:
    if value is None or pd.isna(value):
        return ""
    return f"{100 * value:.1f}".replace(".", ",") + "\u202f%"


def _metric(value: Any, metric: str, signed: bool = False) -> str:
    """A published or computed figure as French text: rates in percent, counts in units."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    rate = is_rate_metric(metric)
    number = 100 * float(value) if rate else float(value)
    text = _num(number, 1 if rate else 0)
    if signed and number > 0:
        text = "+" + text
    return text + ("\u202f%" if rate else "")


_METRIC_LABELS = METRIC_LABELS


def environment() -> jinja2.Environment:
    """The Jinja environment of the site's templates (autoescape on, strict undefined)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(files("cpts_geo") / "templates")),
        autoescape=True,  # every text from an input file is escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = _pct
    env.filters["num"] = _num
    env.filters["metric"] = _metric
    env.filters["metric_label"] = lambda m: _METRIC_LABELS.get(str(m), str(m))
    env.filters["sortkey"] = lambda v: "" if v is None or pd.isna(v) else v
    env.filters["frdate"] = lambda v, time=True: "" if not v else fr_datetime(str(v), time=time)
    env.filters["source_fr"] = source_fr
    # what the publication sets for all its pages (site.py); empty for a page rendered alone
    env.globals.update(version=__version__, generated=None, stale_after=None, cpts_links={},
                       cpts_names={}, dep_pages=set(), dep_names={}, size_classes="")
    env.filters["excel"] = lambda names: [n for n in names if _for_excel(n)]
    env.filters["machine"] = lambda names: [n for n in names if not _for_excel(n)]
    return env


def _for_excel(name: str) -> bool:
    return name.endswith(("_excel.csv", ".xlsx"))


def write_table(df: pd.DataFrame, directory: Path, stem: str) -> list[str]:
    """CSV (and GeoJSON when there are geometries) downloads of ``df``; return the file names.

    Cells that a spreadsheet would evaluate as a formula (``=``, ``+``, ``-``, ``@`` first) are
    prefixed with an apostrophe in the CSV.
    """
    names = []
    plain = spreadsheet_safe(pd.DataFrame(df.drop(columns="geometry", errors="ignore")))
    plain.to_csv(directory / f"{stem}.csv", index=False, lineterminator="\n")
    names.append(f"{stem}.csv")
    if isinstance(df, gpd.GeoDataFrame) and len(df) and df.geometry.notna().any():
        (directory / f"{stem}.geojson").write_text(geojson_text(df), encoding="utf-8")
        names.append(f"{stem}.geojson")
    return names


#: Decimals of the coordinates of the GeoJSON downloads (1e-6 degree: about 10 cm).
GEOJSON_DECIMALS = 6


def geojson_text(df: gpd.GeoDataFrame) -> str:
    """The rows of ``df`` with a geometry as a GeoJSON FeatureCollection (WGS 84).

    See :func:`geojson_features`.
    """
    features = [f for f in geojson_features(df) if f is not None]
    return '{"type": "FeatureCollection", "features": [\n' + ",\n".join(features) + "\n]}\n"


#: pandas' options of the CSV for programs and of the CSV for a French Excel.
_PLAIN_CSV: dict[str, Any] = {"index": False, "lineterminator": "\n"}
_EXCEL_CSV: dict[str, Any] = {"sep": ";", "decimal": ",", "index": False,
                              "lineterminator": "\r\n", "date_format": "%Y-%m-%d"}


class Table:
    """A table's downloads converted once, row by row, so that pages can write slices of it.

    The national tables (every commune, every CPTS) are shown a département or a CPTS at a
    time: converting them once (formula-safe cells, French labels, GeoJSON features, CSV
    lines) and writing each page's rows costs each page in proportion to its rows.
    ``Table(df)`` converts a whole table; :meth:`take` gives the rows of one page.

    Each row's texts are made a column at a time (NumPy, Arrow's string kernels), with the
    bytes the value-by-value writers give: pandas' ``to_csv`` lines, the workbook's cells
    (:class:`~cpts_geo.io.excel.SheetRows`), ``json.dumps`` of the row's records.
    """

    def __init__(self, df: pd.DataFrame, *, lines: bool = True):
        self.attrs = dict(df.attrs)
        self._plain = spreadsheet_safe(pd.DataFrame(df.drop(columns="geometry",
                                                            errors="ignore")))
        shown = readable(df, "all")
        self._shown = spreadsheet_safe(shown)
        self._shown.attrs = dict(shown.attrs)
        self._pos: np.ndarray | None = None
        self.csv_header, self.excel_header = "", ""
        self.csv_rows: list[str] | None = None
        self.excel_rows: list[str] | None = None
        if lines:  # for slices: each row's CSV line, written as it is
            self.csv_header, self.csv_rows = _csv_lines(self._plain, _PLAIN_CSV, "\n")
            self.excel_header, self.excel_rows = _csv_lines(self._shown, _EXCEL_CSV, "\r\n")
        self.sheet_rows = SheetRows.of(self._shown, safe=True) if lines else None
        self.features: list[str | None] | None = None
        if isinstance(df, gpd.GeoDataFrame) and len(df) and df.geometry.notna().any():
            self.features = geojson_features(df)

    def take(self, positions: Any) -> Table:
        """The rows at these positions (in this order); their frames are made when needed."""
        pos = np.asarray(positions, dtype=np.intp)
        part = object.__new__(Table)
        part.__dict__.update(self.__dict__)
        part._pos = pos if self._pos is None else self._pos[pos]
        if self.features is not None:
            part.features = [self.features[i] for i in pos]
        if self.csv_rows is not None:
            part.csv_rows = [self.csv_rows[i] for i in pos]
        if self.excel_rows is not None:
            part.excel_rows = [self.excel_rows[i] for i in pos]
        if self.sheet_rows is not None:
            part.sheet_rows = self.sheet_rows.take(pos)
        return part

    def _rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self._pos is None:
            return frame
        out = frame.iloc[self._pos].reset_index(drop=True)
        out.attrs = dict(frame.attrs)
        return out

    @property
    def n(self) -> int:
        """The number of rows."""
        return len(self._plain) if self._pos is None else len(self._pos)

    @property
    def shown(self) -> pd.DataFrame:
        """The rows as :func:`cpts_geo.io.excel.readable` shows them, formula-safe."""
        return self._rows(self._shown)

    @property
    def plain(self) -> pd.DataFrame:
        """The rows without geometry, formula-safe."""
        return self._rows(self._plain)

    def write(self, directory: Path, stem: str) -> list[str]:
        """``<stem>.csv`` (and ``<stem>.geojson``); return the file names."""
        _write_csv(directory / f"{stem}.csv", self.csv_header, self.csv_rows,
                   lambda: self.plain, _PLAIN_CSV, "utf-8")
        names = [f"{stem}.csv"]
        features = [f for f in self.features or () if f is not None]
        if features:
            (directory / f"{stem}.geojson").write_text(
                '{"type": "FeatureCollection", "features": [\n' + ",\n".join(features)
                + "\n]}\n", encoding="utf-8")
            names.append(f"{stem}.geojson")
        return names

    def write_excel_csv(self, path: Path) -> None:
        """The table for a French Excel (see :func:`cpts_geo.io.excel.write_excel_csv`)."""
        _write_csv(path, self.excel_header, self.excel_rows, lambda: self.shown,
                   _EXCEL_CSV, "utf-8-sig")


#: The rows from which a table's CSV lines are made column by column (see :func:`_csv_lines`);
#: a smaller table is written by pandas at once, for less than a column's fixed cost.
_COLUMNWISE_CSV_ROWS = 1000


def _csv_lines(df: pd.DataFrame, options: dict[str, Any],
               end: str) -> tuple[str, list[str] | None]:
    """The header and the line of each row of ``df`` as CSV: the lines of ``df.to_csv()``.

    None for the lines when a cell holds a line break: its rows cannot be told apart by lines,
    each slice is written by pandas then.

    A line is its fields joined by the separator, each field written alone: the csv module
    pandas writes with quotes a field (QUOTE_MINIMAL) only when it holds the separator, the
    quote character or a line break; a column of numbers, yes/no or text whose text (as pandas
    makes it, see :func:`_csv_text`) holds none is written as it is, at once for the column,
    and any other column by pandas, alone (beside an empty column, so that each of its fields
    is written as in a row of several). A table of fewer than :data:`_COLUMNWISE_CSV_ROWS`
    rows is written by pandas at once.
    """
    sep = options.get("sep", ",")
    if len(df) < _COLUMNWISE_CSV_ROWS:
        return _csv_lines_of(df, options, end)
    unsupported = {"quoting", "quotechar", "escapechar", "doublequote", "float_format",
                   "columns", "header", "index_label", "mode", "compression"}
    if df.shape[1] < 2 or options.get("index", True) or unsupported & set(options) \
            or not isinstance(sep, str) or len(sep) != 1:
        return _csv_lines_of(df, options, end)
    header = df.iloc[:0].to_csv(**options)
    # the characters that make the csv module quote a field (a superset of them)
    special = "".join({sep, '"', "\r", "\n", *end, *options.get("lineterminator", "")})
    if not header.endswith(end) or end in header[:-len(end)] or sep in ("\r", "\n"):
        return _csv_lines_of(df, options, end)
    fields, line_break = [], False
    for j in range(df.shape[1]):
        column = df.iloc[:, j]
        text = _csv_text(column, options)
        if text is None or holds_any(text, special):
            text = _csv_fields_of(column, options, end)
            if text is None:
                return _csv_lines_of(df, options, end)
            # a field with a line break is quoted: the line end is within one field
            line_break = line_break or pc.any(pc.match_substring(text, end)).as_py()
        fields.append(text)
    rows = join_text(*fields, sep=sep)
    if not set(end) <= {"\r", "\n"}:  # pragma: no cover - the site's lines end so
        line_break = pc.any(pc.match_substring(rows, end)).as_py()
    if line_break:  # a line break in a cell: the rows are not told apart by lines
        return header[:-len(end)], None
    return header[:-len(end)], rows.to_pylist()


def _csv_lines_of(df: pd.DataFrame, options: dict[str, Any],
                  end: str) -> tuple[str, list[str] | None]:
    """:func:`_csv_lines` by pandas: the whole table written, then split into lines."""
    text = df.to_csv(**options)
    lines = text.split(end)
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != len(df) + 1:
        return lines[0] if lines else "", None
    return lines[0], lines[1:]


def _csv_fields_of(column: pd.Series, options: dict[str, Any], end: str) -> pa.Array | None:
    """The CSV field of each value of ``column`` as pandas writes it (None: not told apart).

    pandas writes the column beside an empty one: each line is the field, the separator and
    the line end.
    """
    sep = options.get("sep", ",")
    part = column.to_frame("value").reset_index(drop=True)
    part["empty"] = ""
    pieces = part.to_csv(header=False, **options).split(sep + end)
    if len(pieces) != len(column) + 1 or pieces[-1] != "":
        return None
    return pa.array(pieces[:-1], type=pa.large_string())


def _csv_text(column: pd.Series, options: dict[str, Any]) -> pa.Array | None:
    """The text pandas' ``to_csv(**options)`` writes for each value of a column, before quoting.

    For floats (64 bits), integers, yes/no and text: as pandas, ``str(value)`` (a float's
    point replaced by the ``decimal`` option), the ``na_rep`` option for a missing value; made
    for the whole column at once (see :func:`~cpts_geo.io.writers.number_text`); categories of
    text as their text. None for a column of another kind (dates, mixed values...).
    """
    na_rep = options.get("na_rep", "")
    if column.dtype == np.float64:
        values = column.to_numpy()
        text = number_text(values)
        decimal = options.get("decimal", ".")
        if decimal != ".":
            text = pc.replace_substring(text, ".", decimal, max_replacements=1)
        return text_where(np.isnan(values), na_rep, text)
    if isinstance(column.dtype, np.dtype) and column.dtype.kind == "f":
        return None  # float32: written with its own shortest text, left to pandas
    numbers = number_array(column)
    if numbers is not None:
        values, missing = numbers
        if values.dtype.kind == "f":  # Float64: left to pandas
            return None
        if values.dtype.kind == "b":
            text = pc.if_else(pa.array(values), *(pa.scalar(v, pa.large_string())
                                                  for v in ("True", "False")))
        else:
            text = number_text(values)
        return text_where(missing, na_rep, text)
    if isinstance(column.dtype, pd.CategoricalDtype):  # each category once, if all are text
        cats = text_array(pd.Series(column.cat.categories.to_numpy(dtype=object)))
        if cats is None:
            return None
        codes = column.cat.codes.to_numpy()
        return cats.take(pa.array(codes, mask=codes < 0)).fill_null(na_rep)
    strings = text_array(column)
    return None if strings is None else strings.fill_null(na_rep)


def _write_csv(path: Path, header: str, rows: list[str] | None,
               df: Callable[[], pd.DataFrame], options: dict[str, Any], encoding: str) -> None:
    if rows is None:
        df().to_csv(path, encoding=encoding, **options)
        return
    end = options["lineterminator"]
    with open(path, "w", encoding=encoding, newline="") as fh:
        fh.write(header + end)
        if rows:
            fh.write(end.join(rows) + end)


def geojson_features(df: gpd.GeoDataFrame) -> list[str | None]:
    """Each row of ``df`` as a GeoJSON Feature (WGS 84), None for a row without geometry.

    Coordinates are rounded to :data:`GEOJSON_DECIMALS` decimals; properties are the other
    columns, text (and categories) as strings, missing values as null, dates in ISO: the text
    of ``json.dumps(row, ensure_ascii=False)`` for the row's :func:`records`. Geometries are
    written by GEOS's GeoJSON writer; the properties column by column (each value's JSON text
    made at once for a column of numbers, by ``json``'s own string encoder for text), then
    joined row by row with Arrow's string kernels.
    """
    import shapely

    geoms = df.geometry
    if df.crs is not None and not df.crs.equals("EPSG:4326"):
        geoms = geoms.to_crs(4326)
    arr = geoms.to_numpy()
    present = ~shapely.is_missing(arr)
    texts = np.full(len(arr), None, dtype=object)
    if present.any():
        texts[present] = shapely.to_geojson(shapely.set_precision(
            arr[present], 10.0**-GEOJSON_DECIMALS, mode="pointwise"))
    props = pd.DataFrame(df.drop(columns="geometry"), copy=False)
    props.attrs = {}
    # a row's dict (see records): a name given twice keeps its first place, its last values
    last: dict[Any, int] = {}
    for j, name in enumerate(props.columns):
        last[name] = j
    fields = []
    for name, j in last.items():
        key = json.dumps({name: 0}, ensure_ascii=False)[1:-len(": 0}")]
        fields.append(join_text(key + ": ", _json_values(props.iloc[:, j])))
    properties = (join_text(*fields, sep=", ") if fields
                  else pa.array([""] * len(props), type=pa.large_string()))
    heads = join_text('{"type": "Feature", "properties": {', properties, '}, "geometry": ')
    return [None if geom is None else head + geom + "}"  # the geometry's text copied once
            for head, geom in zip(heads.to_pylist(), texts, strict=True)]


def _json_values(series: pd.Series) -> pa.Array:
    """The JSON text of each value of a property column (see :func:`geojson_features`)."""
    dtype = series.dtype
    if not pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype) \
            and not pd.api.types.is_datetime64_any_dtype(dtype):
        strings = _property_text(series)  # str(value), null when missing
        if holds_any(strings, _JSON_ESCAPED):
            encoded = pa.array(map(encode_basestring, strings.fill_null("").to_pylist()),
                               type=pa.large_string())
        else:  # nothing for json to escape: the text between quotes
            encoded = join_text('"', strings, '"')
        return text_where(strings.is_null().to_numpy(zero_copy_only=False), "null", encoded)
    numbers = number_array(series)
    if numbers is not None:
        values, missing = numbers
        if values.dtype.kind == "b":
            text = pc.if_else(pa.array(values), *(pa.scalar(v, pa.large_string())
                                                  for v in ("true", "false")))
        else:
            if values.dtype.kind == "f":  # as jsonable: a Python float, null if not finite
                values = values.astype(np.float64, copy=False)
                missing = missing | ~np.isfinite(values)
            text = number_text(values)
        return text_where(missing, "null", text)
    dates = iso_dates(series)
    if dates is not None:
        text = pa.array(dates, type=pa.large_string())
        return join_text('"', text, '"').fill_null("null")
    return pa.array([json.dumps(jsonable(v), ensure_ascii=False, allow_nan=False, default=str)
                     for v in series.to_numpy(dtype=object)], type=pa.large_string())


#: The characters that ``json.dumps(..., ensure_ascii=False)`` escapes in a text.
_JSON_ESCAPED = "".join(map(chr, range(0x20))) + '"\\'


def _property_text(series: pd.Series) -> pa.Array:
    """``str`` of each value of a property column of text, null where it is missing.

    Text, categories, or anything but numbers, yes/no and dates (see :func:`_json_values`).
    """
    if isinstance(series.dtype, pd.CategoricalDtype):  # each category once
        cats = pa.array([str(v) for v in series.cat.categories.to_numpy(dtype=object)],
                        type=pa.large_string())
        codes = series.cat.codes.to_numpy()
        return cats.take(pa.array(codes, mask=codes < 0))
    strings = text_array(series)
    if strings is not None:
        return strings
    missing = np.asarray(series.isna(), dtype=bool)
    values = series.astype(object).to_numpy()
    return pa.array([None if m else str(v) for v, m in zip(values, missing, strict=True)],
                    type=pa.large_string())


def write_downloads(
    tables: Sequence[tuple[str, str, pd.DataFrame | Table]], directory: Path,
    workbook: str | None, about: Sequence[tuple[str, Any]], meta: Mapping[str, Any],
) -> list[str]:
    """Every download of a page; return the file names, for programs first, then for Excel.

    Parameters
    ----------
    tables : sequence of (stem, sheet title, DataFrame or Table)
        The page's tables: ``<stem>.csv`` (and ``<stem>.geojson``) for programs, with a
        ``<stem>.csv-metadata.json`` sidecar giving ``meta``; ``<stem>_excel.csv`` and a sheet
        of ``workbook`` for Excel. A :class:`Table` is a slice of a table converted once.
    directory : Path
        The page's folder.
    workbook : str or None
        The file name of the page's ``.xlsx`` (fixed by the site, never from an input); None:
        no workbook (a page with one small table: its ``_excel.csv`` is enough).
    about : sequence of (str, value)
        The "Source" sheet of the workbook.
    meta : mapping
        :func:`cpts_geo.io.writers.table_meta` of the publication.
    """
    machine: list[str] = []
    excel: list[str] = []
    sheets = []
    for stem, title, df in tables:
        table = df if isinstance(df, Table) else Table(df, lines=False)
        machine += table.write(directory, stem)
        with open(directory / f"{stem}.csv-metadata.json", "w", encoding="utf-8") as fh:
            dump_json(csv_metadata(f"{stem}.csv", meta), fh)
        table.write_excel_csv(directory / f"{stem}_excel.csv")
        excel.append(f"{stem}_excel.csv")
        sheets.append((title, table.sheet_rows if table.sheet_rows is not None
                       else table.shown))
    if workbook is None:
        return [*machine, *excel]
    write_workbook(sheets, directory / workbook, about, safe=True)
    return [*machine, workbook, *excel]


def about_rows(attrs: Mapping[str, Any], territories: str, generated: str,
               stale_after: str | None = None) -> list[tuple[str, Any]]:
    """The lines of a workbook's "Source" sheet: vintage, sources, publication."""
    rows: list[tuple[str, Any]] = [
        ("Publié le", fr_datetime(generated)),
        ("Populations légales", f"en vigueur en {attrs.get('population_year')} (recensement "
                                f"{attrs.get('census_year')})"),
        ("Communes", f"code officiel géographique (COG) {attrs.get('cog_year')}"),
        ("Sources", source_fr(attrs)),
        ("Territoires CPTS", territories),
        ("Lecture", "Taux en pourcentage (une décimale), écarts en points, populations en "
                    "nombre d'habitants arrondi ; les fichiers CSV sans « _excel » gardent les "
                    "valeurs exactes pour les programmes (taux entre 0 et 1)."),
        ("Produit par", f"cpts_geo {__version__}"),
    ]
    if stale_after:
        rows.insert(1, ("À remplacer avant le", fr_datetime(stale_after)))
    return rows


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented UTF-8 JSON (NaN as null, dates ISO)."""
    with open(path, "w", encoding="utf-8") as fh:
        dump_json(obj, fh)


def table_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of ``df`` without geometry, JSON-ready (for templates and summaries)."""
    return records(df)


def read_json(path: Path) -> Any:
    """Read a JSON file written by :func:`write_json`."""
    return json.loads(path.read_text("utf-8"))
