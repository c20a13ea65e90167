"""Where the reference communes come from: the bundle (offline, the default) or a web service.

:func:`load_communes` is the one entry point; every source gives the same columns and carries
its vintage in ``attrs``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import geopandas as gpd
import pandas as pd

from ..errors import InputError, public
from ..geography import city_of_arrondissement, local_crs, normalize_departements, normalize_regions
from ..typing import Source
from .bundle import COLUMNS, bundled_communes

__all__ = ["load_communes"]


@public
def load_communes(
    departements: str | int | Sequence[str | int] | None = None,
    regions: str | int | Sequence[str | int] | None = None,
    *,
    year: int | None = None,
    source: Source = "bundled",
    arrondissements: bool = False,
    refresh: bool = False,
    max_age: timedelta | float | None = None,
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
    refresh : bool
        Online sources only: download again even when the local cache has the answer (see
        :func:`cpts_geo.fetch_communes`, which also has the network options).
    max_age : datetime.timedelta or float, optional
        Online sources only: the oldest cache file accepted (a number is a count of days); an
        older one is downloaded again. Default: a cache file is used whatever its age.

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
        If a code or the year is not known, or ``refresh``/``max_age`` is given for the bundle.
    DataSourceError
        From an online source: the service failed or sent an incomplete answer (nothing is
        cached then); see :func:`cpts_geo.fetch_communes`.

    Examples
    --------
    >>> loire = load_communes("42")
    >>> len(loire)
    320
    >>> loire.set_index("insee").loc["42110", "nom"]
    "L'Horme"
    >>> loire.attrs["population_year"]
    2026

    Online, with a cache file at most 30 days old:

    >>> loire = load_communes("42", source="geo-api", max_age=30)  # doctest: +SKIP
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
                                arrondissements=arrondissements, refresh=refresh,
                                max_age=max_age)
        return _complete(online, source)
    if refresh or max_age is not None:
        raise InputError(
            "`refresh` and `max_age` only apply to the online sources (source='geo-api' or "
            "'ign'); the bundled communes are read from the package, never cached"
        )
    deps = normalize_departements(departements)
    regs = normalize_regions(regions)
    return bundled_communes(deps, regs, year=year, arrondissements=arrondissements)


def _complete(gdf: gpd.GeoDataFrame, source: str) -> gpd.GeoDataFrame:
    """Give a frame from an online source the columns of the bundled one.

    ``kind`` and ``parent`` come from the codes of the municipal arrondissements; ``area_km2``
    is computed in Lambert-93 (local UTM projections overseas).
    """
    out = gdf.copy()
    parent = out["insee"].map(city_of_arrondissement())
    out["kind"] = parent.notna().map({True: "arrondissement", False: "commune"})
    out["parent"] = parent
    area = pd.Series(float("nan"), index=out.index)
    has = out.geometry.notna()
    crs = out["departement"].map(local_crs).astype(int)
    for code in crs[has].unique():
        sel = has & (crs == code)
        area[sel] = out.loc[sel].geometry.to_crs(int(code)).area / 1e6
    out["area_km2"] = area.round(4)
    out = out[[c for c in COLUMNS if c in out.columns]]
    out.attrs = {**gdf.attrs, "source_kind": source}
    return out


