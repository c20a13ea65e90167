"""Online reference data: current communes, boundaries and populations from public web services.

Two services are supported, both free and without an API key:

``"geo-api"``
    The *API Découpage administratif* of geo.api.gouv.fr (Etalab, source code in the
    ``datagouv/api-geo`` repository). One request per département::

        GET {base}/departements/{dep}/communes
            ?fields=nom,code,codeDepartement,codeRegion,codeEpci,population
            &format=geojson&geometry=contour

    and, for the municipal arrondissements of Paris, Lyon and Marseille::

        GET {base}/communes?codeDepartement={dep}&type=arrondissement-municipal
            &fields=...&format=geojson&geometry=contour

    The routes, the ``fields``/``format``/``geometry``/``type``/``codeDepartement`` parameters and
    the property names come from the service's ``server.js``, ``lib/communeHelpers.js``,
    ``lib/helpers.js`` and ``definition.yml`` (``population`` is the *population municipale*).
    The service answers ``400`` to ``/communes?format=geojson`` without any filter, so a national
    download is made département by département. Arrondissements carry no ``codeEpci``
    (``build/communes.js`` only maps EPCI members); they inherit the EPCI of their city.

``"ign"``
    The IGN Géoplateforme WFS 2.0 (GeoServer) at ``https://data.geopf.fr/wfs/ows``, feature
    types ``ADMINEXPRESS-COG.LATEST:commune`` and
    ``ADMINEXPRESS-COG.LATEST:arrondissement_municipal`` (ADMIN EXPRESS COG, latest edition),
    GeoJSON output (``OUTPUTFORMAT=application/json``, ``SRSNAME=EPSG:4326``), paged with
    ``COUNT``/``STARTINDEX`` until ``numberMatched`` features are received, filtered with the
    GeoServer ``CQL_FILTER`` vendor parameter. Property names are those of the published
    feature-type schemas (``ignfab/gpf-schema-store``, see :data:`_IGN_COMMUNE_FIELDS`);
    ``codes_siren_des_epci`` may hold several SIREN separated by ``/`` (Grand Paris) or
    ``NR``. ``date_du_recensement`` is the census date of ``population``; INSEE legal
    populations of census year *N* are in force from 1 January *N* + 3.

Every download is bounded in time (``deadline``) and size (``max_bytes``, as received and once
decompressed), retried on network errors, timeouts, ``429`` and ``5xx`` (honouring
``Retry-After``), and checked before it is returned or cached: a FeatureCollection, every required
property, a polygonal geometry, 5-character INSEE codes, plausible populations, no duplicates, and
completeness against the bundle, département by département (the INSEE codes received against the
bundle's COG 2026 codes, within a tolerance for communes merged or created since; see
:mod:`cpts_geo.sources.features`). Only a complete answer is cached, as a GeoParquet file written
atomically that records when and from which URL it was downloaded. Failures raise
:class:`~cpts_geo.errors.DataSourceError` naming the URL.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from datetime import timedelta
from urllib.parse import urlsplit

import geopandas as gpd
import requests

from ..errors import InputError, public
from ..geography import (
    departements_of_region,
    normalize_departements,
    normalize_regions,
)
from .cache import _cache_name, _read_cache, _resolve_cache_dir, _write_cache
from .geoapi import GEO_API_URL, _fetch_geo_api
from .http import DEFAULT_DEADLINE, DEFAULT_MAX_BYTES, HttpClient, _stderr_is_tty
from .ign import IGN_WFS_URL, _fetch_ign

__all__ = ["GEO_API_URL", "IGN_WFS_URL", "fetch_communes"]

OnlineSource = str
Codes = str | int | Sequence[str | int] | None
#: A cache age: a ``datetime.timedelta``, or a number of days.
MaxAge = timedelta | float | int | None


@public
def fetch_communes(
    departements: Codes = None,
    regions: Codes = None,
    *,
    source: OnlineSource = "geo-api",
    arrondissements: bool = False,
    refresh: bool = False,
    max_age: MaxAge = None,
    cache_dir: str | os.PathLike[str] | None = None,
    base_url: str | None = None,
    timeout: float = 30.0,
    retries: int = 4,
    deadline: float = DEFAULT_DEADLINE,
    max_bytes: int = DEFAULT_MAX_BYTES,
    session: requests.Session | None = None,
    progress: bool | None = None,
) -> gpd.GeoDataFrame:
    """Download the current communes with their boundary and population, with a local cache.

    Parameters
    ----------
    departements : str, int or sequence, optional
        Département codes (``"42"``, ``1`` or ``"1"`` for ``"01"``, ``"2a"`` for ``"2A"``,
        ``"974"``). Combined with ``regions`` as a union.
    regions : str, int or sequence, optional
        Région codes (``"84"`` for Auvergne-Rhône-Alpes, ``"04"`` for La Réunion). When both
        ``departements`` and ``regions`` are None, the whole of France is downloaded
        (metropolitan France and the five overseas départements).
    source : {"geo-api", "ign"}
        ``"geo-api"``: API Découpage administratif (https://geo.api.gouv.fr), one request per
        département. ``"ign"``: IGN Géoplateforme WFS (https://data.geopf.fr/wfs/ows), ADMIN
        EXPRESS COG latest edition, paged.
    arrondissements : bool
        Replace Paris (75056), Lyon (69123) and Marseille (13055) by their municipal
        arrondissements (75101-75120, 69381-69389, 13201-13216), which inherit the EPCI of their
        city.
    refresh : bool
        Download again even when a cache file exists (the cache is replaced only when the new
        answer passes every check; a failed download leaves it as it was).
    max_age : datetime.timedelta or float, optional
        Oldest cache file accepted: one written longer ago is downloaded again. A number is a
        count of days (``max_age=30``). Default: a cache file is used whatever its age (the
        services change once a year, on 1 January; ``attrs["retrieved"]`` tells when).
    cache_dir : str or path-like, optional
        Cache directory. Default: the environment variable ``CPTS_GEO_CACHE_DIR`` if set, else
        ``platformdirs.user_cache_dir("cpts_geo")``. There is one GeoParquet file per request set
        (source, base URL, départements, arrondissements); it records when it was written and
        from which URL. Only complete answers are cached.
    base_url : str, optional
        Another server: the API root for ``"geo-api"`` (default :data:`GEO_API_URL`), the WFS
        endpoint for ``"ign"`` (default :data:`IGN_WFS_URL`). Useful for a mirror or for tests.
    timeout : float
        Connect timeout, and longest wait for any piece of an answer, in seconds.
    retries : int
        How many times a request is tried again after a connection error, a timeout, a truncated
        body, HTTP 429 or 5xx (exponential backoff, ``Retry-After`` honoured). Other HTTP errors
        are not retried.
    deadline : float
        Longest time one download (one URL: one département for ``"geo-api"``, one page for
        ``"ign"``) may take, every attempt and wait included, in seconds (default 120). It stops
        a server that sends its answer drop by drop, which ``timeout`` alone would not.
    max_bytes : int
        Largest answer accepted for one download, in bytes, both as received and once
        decompressed (default 256 MiB). Bodies are read and decompressed piece by piece, so a
        small compressed answer that would expand to gigabytes is refused at this limit.
    session : requests.Session, optional
        Session to use (proxies, certificates, adapters). Default: a new session, closed at the
        end.
    progress : bool, optional
        Show a tqdm progress bar. Default (None): only when standard error is a terminal.

    Returns
    -------
    geopandas.GeoDataFrame
        EPSG:4326, one row per commune (or arrondissement), sorted by INSEE code, with exactly the
        columns ``insee`` (5-character code), ``nom`` (official name with its article),
        ``departement``, ``region``, ``epci`` (SIREN, missing for communes outside any EPCI),
        ``population`` (``Int64`` municipal population, missing stays missing) and ``geometry``
        (valid MultiPolygon). ``attrs`` holds ``source`` (service and URL), ``population_year``
        (year the population is legally in force, None when the service does not say),
        ``census_year``, ``cog_year`` (None when unknown) and ``retrieved`` (ISO 8601 UTC time
        of the download).

    Raises
    ------
    InputError
        If a code or an argument is malformed (nothing is downloaded).
    DataSourceError
        If the service cannot be reached, does not answer within ``deadline``, answers an error,
        or sends an incomplete or inconsistent answer (the INSEE codes of a département differ
        from the bundle's by more than the tolerance, a population is missing or implausible,
        the JSON is invalid or nested too deeply...); the message names the URL. Nothing is
        cached then.
    ResourceLimitError
        If an answer is larger than ``max_bytes`` (the message states the limit).

    Warns
    -----
    CptsGeoWarning
        When invalid geometries were repaired (the INSEE codes are listed), when a corrupt cache
        file was ignored, or when the cache could not be written.

    Examples
    --------
    >>> loire = fetch_communes("42", source="ign", max_age=30)  # doctest: +SKIP
    >>> loire.set_index("insee").loc["42110", "nom"]  # doctest: +SKIP
    "L'Horme"
    >>> loire.attrs["retrieved"]  # doctest: +SKIP
    '2026-11-23T02:00:11+00:00'
    """
    if source not in ("geo-api", "ign"):
        raise InputError(
            f"`source` was {source!r} but is expected to be 'geo-api' (geo.api.gouv.fr) "
            "or 'ign' (IGN Géoplateforme WFS, ADMIN EXPRESS COG)"
        )
    _check_options(timeout=timeout, retries=retries, deadline=deadline, max_bytes=max_bytes)
    age = _check_max_age(max_age)
    deps = _resolve_scope(departements, regions)
    base = _check_base_url(base_url if base_url is not None else _default_base(source))
    directory = _resolve_cache_dir(cache_dir)
    path = directory / _cache_name(source, base, deps, arrondissements)

    if not refresh:
        cached = _read_cache(path, deps=deps, arrondissements=arrondissements, max_age=age)
        if cached is not None:
            return cached

    show = _stderr_is_tty() if progress is None else bool(progress)
    http = HttpClient(session=session, timeout=float(timeout), retries=int(retries),
                      deadline=float(deadline), max_bytes=int(max_bytes))
    try:
        if source == "geo-api":
            gdf = _fetch_geo_api(http, base, deps, arrondissements=arrondissements, show=show)
        else:
            gdf = _fetch_ign(http, base, deps, arrondissements=arrondissements, show=show)
    finally:
        http.close()
    _write_cache(path, gdf, source=source, base=base, deps=deps, arrondissements=arrondissements)
    return gdf


# =================================================================================================
# Input validation
# =================================================================================================
def _positive_number(value: object) -> bool:
    return (not isinstance(value, bool) and isinstance(value, int | float)
            and math.isfinite(value) and value > 0)


def _check_options(
    *, timeout: object, retries: object, deadline: object, max_bytes: object
) -> None:
    if not _positive_number(timeout):
        raise InputError(f"`timeout` was {timeout!r} but must be a positive number of seconds")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InputError(f"`retries` was {retries!r} but must be an integer >= 0")
    if not _positive_number(deadline):
        raise InputError(
            f"`deadline` was {deadline!r} but must be a positive number of seconds (the longest "
            f"one download may take; default {DEFAULT_DEADLINE:g})"
        )
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
        raise InputError(
            f"`max_bytes` was {max_bytes!r} but must be a positive integer (the largest answer "
            f"accepted, in bytes; default {DEFAULT_MAX_BYTES})"
        )


def _check_max_age(max_age: object) -> timedelta | None:
    """``max_age`` as a timedelta (a number is a count of days), None for no limit."""
    if max_age is None:
        return None
    if isinstance(max_age, timedelta):
        if max_age >= timedelta(0):
            return max_age
    elif (not isinstance(max_age, bool) and isinstance(max_age, int | float)
          and max_age >= 0):
        try:
            return timedelta(days=max_age)
        except OverflowError:  # more days than a timedelta holds: no limit in practice
            return timedelta.max
    raise InputError(
        f"`max_age` was {max_age!r} but must be a number of days >= 0 or a datetime.timedelta "
        "(the oldest cache file accepted), or None to accept a cache file whatever its age"
    )


def _default_base(source: str) -> str:
    return GEO_API_URL if source == "geo-api" else IGN_WFS_URL


def _check_base_url(url: str) -> str:
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
        raise InputError(
            f"`base_url` was {url!r} but must be an http(s) URL such as {GEO_API_URL!r} "
            f"(geo-api) or {IGN_WFS_URL!r} (ign)"
        )
    return url.rstrip("/")


def _resolve_scope(departements: Codes, regions: Codes) -> tuple[str, ...] | None:
    """Return the sorted départements asked for (union of both arguments), None for France."""
    deps = normalize_departements(departements)
    regs = normalize_regions(regions)
    if deps is None and regs is None:
        return None
    wanted = set(deps or [])
    for r in regs or []:
        wanted.update(departements_of_region(r))
    return tuple(sorted(wanted))
