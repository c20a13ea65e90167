"""Read CPTS territories from the files planners keep, into the membership table.

A CPTS territory is published in many shapes: a spreadsheet with one row per CPTS and commune
(*long form*), a press release listing all the communes of a CPTS in one cell (*wide form*), or a
map with one outline per CPTS. :func:`read_territories` reads all of them (one file, several, or
a folder) into the membership table of :mod:`cpts_geo.membership`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TypeAlias

import geopandas as gpd
import pandas as pd

from ..errors import InputError, Problem, TerritoryError, public
from ..membership import RawTable, Report, finish, members_frame, validate_table
from .outlines import _outline_members
from .tables import EXTENSIONS, MAX_BYTES, MAX_CELLS, MAX_ROWS, Limits, load_source

__all__ = ["outline_fractions", "read_territories"]

Input: TypeAlias = str | os.PathLike[str] | pd.DataFrame


@public
def read_territories(
    source: Input | Sequence[Input],
    *,
    communes: gpd.GeoDataFrame | None = None,
    sheet: str | int | None = None,
    threshold: float = 0.5,
    fuzzy: bool = False,
    trust_codes: bool = False,
    max_bytes: int = MAX_BYTES,
    max_rows: int = MAX_ROWS,
    max_cells: int = MAX_CELLS,
) -> pd.DataFrame:
    """Read CPTS territories (which communes each CPTS covers) into the membership table.

    Accepted inputs:

    * **long form**: one row per CPTS and commune, with a CPTS name column and a commune column
      (INSEE code, or name resolved with :mod:`cpts_geo.codes`), and optionally ``cpts_id``,
      ``departement`` (restricts name matching; codes or names, ``"042"``, ``"Loire"``; a cell
      may list several: ``"42,69"``), ``code postal`` (checks and disambiguates the names: a
      postal code alone identifies no commune), ``status``, ``status_date``, ``share`` and
      ``source``. Headers are matched in French or English, ignoring case, accents, spaces and
      underscores (``"Code INSEE"``, ``"nom commune"``, ``"statut"``, ``"date de signature"``,
      ``"quote-part"``...). Title rows above the header are skipped; merged Excel cells (a CPTS
      name merged over its communes) are filled. Names are read as planners write them:
      ``"Lyon 5ème"``, ``"5ème arrondissement de Lyon"``, ``"3ᵉ arrondissement"`` (in a
      Rhône file), ``"Châteauneuf (42)"``, ``"Trèves (Rhône)"``. A row giving a code and a
      name that designate different communes is a problem showing both (a postal code typed
      as an INSEE code is said so), unless ``trust_codes``. Two former communes of one commune
      nouvelle listed in one CPTS are the commune nouvelle once, with a warning.
    * **wide form**: one row per CPTS with all its communes in one cell, separated by commas,
      semicolons or new lines (commune names never contain them; ``"A et B"`` at the end of a
      list, ``"Gières et Venon"``, is split when it is not itself a commune name).
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
    Excel ``.xlsx`` (the active sheet when visible, else the first visible one; a hidden sheet
    only when named), GeoJSON, GeoPackage. Row numbers are those a spreadsheet user sees (the
    header is row 1 when it is the first row); for a (Geo)DataFrame, GeoJSON or GeoPackage,
    the first row or feature is row 2. Reading is bounded: a file larger than ``max_bytes``
    (or a workbook decompressing beyond it), a table beyond ``max_rows`` rows or
    ``max_cells`` cells is refused before it is read whole, with the limit in the message.

    Parameters
    ----------
    source : str, path, pandas.DataFrame or geopandas.GeoDataFrame, or a list of them
        The file, or a table/outlines already in memory (never modified). A folder reads every
        territory file in it (``.csv``, ``.xlsx``, ``.geojson``, ``.gpkg``...); a list reads
        each item. Tables from several inputs are concatenated; a CPTS (same ``cpts_id``) found
        in two inputs is an error naming both.
    communes : geopandas.GeoDataFrame, optional
        Reference communes (as returned by :func:`cpts_geo.load_communes`). For outlines, the
        communes to assign (default: the bundled communes and arrondissements of the
        départements the outlines touch). For tables, its départements restrict name matching on
        rows without a département.
    sheet : str or int, optional
        Excel sheet (name or index; default the active sheet if visible, else the first
        visible one), or GeoPackage layer.
    threshold : float
        Outlines only: the share of a commune's area an outline must cover, in (0, 1].
    fuzzy : bool
        Accept a single close match for a misspelt commune name, with a warning.
    trust_codes : bool
        Use the INSEE code of a row whose name designates another commune, with a warning
        (default: a problem showing both).
    max_bytes : int
        Largest file read, in bytes (and largest decompressed workbook); default 256 MiB.
    max_rows : int
        Most rows of a table (in a workbook, the last row holding a value); default 200,000.
    max_cells : int
        Most cells of a table held in memory; default 5,000,000.

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
        (row in the input). With several inputs, ``source`` is completed with the file name
        where the file gives none. ``attrs`` holds scalars only: ``source`` (file name(s) or
        ``"DataFrame"``), ``n_cpts``, ``n_communes``, ``form`` (``"long"``, ``"wide"``,
        ``"outlines"`` or ``"several"``), ``ignored_columns``, ``cog_year``, ``sheet`` (Excel:
        the sheet read) and, for outlines, ``threshold``. The fractions of communes split
        between outlines are given by :func:`outline_fractions`.

    Raises
    ------
    TerritoryError
        Listing every problem of the input with its row, column and value: unknown code,
        unknown or ambiguous name (with the closest candidates, for the first
        :data:`~cpts_geo.codes.SUGGESTED_NAMES` unknown names; an ambiguous name says which
        candidate lies in the département of the rest of its CPTS), a code and a name that
        disagree, commune outside the row's département, duplicate (CPTS, commune), share out
        of range, unknown status, bad date, missing CPTS name, empty commune, a formula without
        a saved value, a nested JSON value, a value outside the table, conflicting statuses,
        dates or ids within a CPTS, an id shared by two CPTS, invalid or misplaced outlines
        (NaN or infinite coordinates included), outlines covering no commune. The message
        gives one line per problem, the same mistake on several rows once.
    ResourceLimitError
        If the input is larger than ``max_bytes``, ``max_rows`` or ``max_cells`` (the message
        states the limit and how to raise it).
    InputError
        If the input cannot be read: file not found, unknown extension, empty file, malformed
        CSV, Excel or JSON (nested too deeply included), missing columns (the message lists the
        columns found and the accepted headers, and a workbook's sheets), outlines without CRS,
        with an unknown CRS, of GeometryCollections, or not in France.

    Warns
    -----
    CptsGeoWarning
        When a code of a commune déléguée, associée or merged commune (or a former name) is
        resolved to the current commune, a name is matched approximately (``fuzzy``), a CPTS
        name is spelt in several ways, a row's code comes with its name misspelt (or with
        another commune's name and ``trust_codes``), two former communes of one commune
        nouvelle are both listed in a CPTS (counted once), an outline is repaired, or communes
        are split between outlines.

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
    _check_options(communes, threshold)
    limits = Limits(max_bytes, max_rows, max_cells)
    limits.check()
    inputs = _expand(source)
    options = {"communes": communes, "threshold": threshold, "fuzzy": fuzzy,
               "trust_codes": trust_codes, "limits": limits}
    if len(inputs) == 1:
        return _read_one(inputs[0], sheet=sheet, **options)  # type: ignore[arg-type]
    if sheet is not None:
        raise InputError("`sheet` applies to one workbook; read several files without it")
    frames = [_read_one(i, sheet=None, **options) for i in inputs]  # type: ignore[arg-type]
    return _concat(frames)


def _check_options(communes: object, threshold: object) -> None:
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


def _expand(source: object) -> list[Input]:
    """One input, a list of inputs, or a folder of territory files."""
    if isinstance(source, pd.DataFrame | str | os.PathLike):
        if not isinstance(source, pd.DataFrame) and Path(source).is_dir():
            files = sorted(p for p in Path(source).iterdir()
                           if p.is_file() and p.suffix.lower() in EXTENSIONS
                           and not p.name.startswith((".", "~$")))
            if not files:
                raise InputError(
                    f"{Path(source).name}: the folder holds no territory file (one of "
                    f"{', '.join(sorted(EXTENSIONS))})"
                )
            return list(files)
        return [source]
    if isinstance(source, Sequence) and not isinstance(source, bytes):
        items = list(source)
        if not items:
            raise InputError("`source` is an empty list: give a file, a folder or a table")
        return [i for item in items for i in _expand(item)]
    raise InputError(
        f"`source` was a {type(source).__name__} but is expected to be a file path, a folder, "
        "a (Geo)DataFrame or a list of them"
    )


def _read_one(
    source: Input, *, communes: gpd.GeoDataFrame | None, sheet: str | int | None,
    threshold: float, fuzzy: bool, trust_codes: bool, limits: Limits,
) -> pd.DataFrame:
    name, loaded = load_source(source, sheet, limits)
    if isinstance(loaded, RawTable):
        scope = None
        if communes is not None and "departement" in communes.columns:
            scope = {str(d) for d in communes["departement"].dropna().unique()}
        frame = validate_table(loaded, scope=scope, fuzzy=fuzzy, trust_codes=trust_codes)
        frame.attrs["source"] = name
        return frame
    report = Report(name)
    _entries, members, groups, _fractions, ignored = _outline_members(
        loaded, communes=communes, threshold=threshold, report=report
    )
    report.warn()
    frame = members_frame(members, groups)
    frame.attrs = {"source": name, "form": "outlines", "threshold": threshold,
                   "ignored_columns": ignored}
    return finish(frame)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Several membership tables into one; a CPTS in two inputs is a problem naming both."""
    owner: dict[str, tuple[str, int]] = {}
    problems = []
    for frame in frames:
        src = str(frame.attrs.get("source", "DataFrame"))
        for cid, row in frame.groupby("cpts_id", sort=False)["row"].first().items():
            if cid in owner and owner[cid][0] != src:
                first_src, first_row = owner[cid]
                problems.append(Problem(
                    src, int(row), "cpts", cid,
                    f"CPTS {cid!r} is also in {first_src} (row {first_row}): a CPTS must be in "
                    "one file only; remove it from one of them",
                ))
            owner.setdefault(str(cid), (src, int(row)))
    if problems:
        raise TerritoryError(problems)
    out = pd.concat([f.assign(source=f["source"].fillna(str(f.attrs.get("source", ""))))
                     for f in frames], ignore_index=True)
    names = [str(f.attrs.get("source", "DataFrame")) for f in frames]
    ignored = sorted({c for f in frames for c in f.attrs.get("ignored_columns", [])})
    out.attrs = {"source": ", ".join(names), "form": "several", "ignored_columns": ignored}
    return finish(out)


@public
def outline_fractions(
    source: Input,
    *,
    communes: gpd.GeoDataFrame | None = None,
    sheet: str | int | None = None,
    threshold: float = 0.5,
    max_bytes: int = MAX_BYTES,
) -> pd.DataFrame:
    """How much of each commune each CPTS outline covers (the detail behind outline files).

    Parameters
    ----------
    source : str, path or geopandas.GeoDataFrame
        CPTS outlines, as accepted by :func:`read_territories`.
    communes, sheet, threshold, max_bytes
        As in :func:`read_territories`.

    Returns
    -------
    pandas.DataFrame
        One row per (commune, CPTS) whose intersection is 1 % of the commune's area or more,
        sorted by commune then fraction: ``insee``, ``nom``, ``cpts``, ``fraction`` (of the
        commune's area), ``assigned`` (the fraction reaches ``threshold``) and ``split`` (the
        commune is covered by no single outline at ``threshold`` but by the outlines together,
        or by several at 10 % or more each).

    Raises
    ------
    InputError
        If the source holds no outlines, or as :func:`read_territories`.
    """
    _check_options(communes, threshold)
    limits = Limits(max_bytes=max_bytes)
    limits.check()
    name, loaded = load_source(source, sheet, limits)
    if isinstance(loaded, RawTable):
        raise InputError(f"{name}: holds no polygons; outline_fractions reads CPTS outlines")
    report = Report(name)
    _entries, _members, _groups, fractions, _ignored = _outline_members(
        loaded, communes=communes, threshold=threshold, report=report
    )
    return fractions
