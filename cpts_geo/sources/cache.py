"""The one cache of downloaded reference data: GeoParquet files written atomically.

One file per request set (source, base URL, départements, arrondissements), named with a digest
of the request. Each file records when it was written and from which URL (its metadata, and the
frame's ``attrs["retrieved"]`` and ``attrs["source"]``); only answers that passed every check,
completeness included, are written. A file that is unreadable, incomplete or of another layout is
ignored (with a warning) and downloaded again; one older than the caller's ``max_age``, or written
by another version of the cache layout, is downloaded again without a warning. Temporary files of
killed processes are removed after an hour.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import geopandas as gpd
import platformdirs

from .._atomic import atomic_path, fsync_dir
from ..errors import CptsGeoError, CptsGeoWarning
from .features import _ALL_DEPARTEMENTS, _check_complete
from .http import _short_exc

__all__: list[str] = []

#: Version of the cache layout; bump it to ignore older cache files. 2: files record when they
#: were written and from which URL, and hold only complete answers (version 1 could hold a
#: partial answer, which is why its files are downloaded again).
_CACHE_VERSION = 2
#: Temporary cache files older than this (seconds) are left-overs of a killed process.
_STALE_TEMP_AGE = 3600.0

_ENV_CACHE_DIR = "CPTS_GEO_CACHE_DIR"
_COLUMNS = ["insee", "nom", "departement", "region", "epci", "population", "geometry"]
_REQUIRED_ATTRS = ("source", "population_year", "retrieved")
log = logging.getLogger("cpts_geo.cache")


def _resolve_cache_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(_ENV_CACHE_DIR, "").strip()
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("cpts_geo"))


def _cache_key(
    source: str, base: str, deps: tuple[str, ...] | None, arrondissements: bool
) -> dict[str, Any]:
    return {
        "version": _CACHE_VERSION,
        "source": source,
        "base_url": base,
        "departements": list(deps) if deps is not None else "all",
        "arrondissements": arrondissements,
    }


def _cache_name(
    source: str, base: str, deps: tuple[str, ...] | None, arrondissements: bool
) -> str:
    key = _cache_key(source, base, deps, arrondissements)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    if deps is None:
        label = "france"
    elif len(deps) <= 4:
        label = "-".join(deps)
    else:
        label = f"{len(deps)}deps"
    return f"communes-{source}-{label}{'-arr' if arrondissements else ''}-{digest}.parquet"


def _written(meta: dict[str, Any]) -> datetime | None:
    try:
        when = datetime.fromisoformat(str(meta.get("written")))
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def _cache_problem(
    gdf: gpd.GeoDataFrame, deps: tuple[str, ...] | None, arrondissements: bool
) -> str | None:
    meta = gdf.attrs["cpts_geo_cache"]
    if _written(meta) is None or not isinstance(meta.get("base_url"), str):
        return "no date or URL of writing"
    if list(gdf.columns) != _COLUMNS:
        return f"unexpected columns {list(gdf.columns)}"
    missing = [k for k in _REQUIRED_ATTRS if k not in gdf.attrs]
    if missing:
        return f"missing metadata {missing}"
    if len(gdf) == 0 or gdf["insee"].isna().any() or gdf["insee"].duplicated().any():
        return "missing or duplicated INSEE codes"
    if gdf.crs is None or gdf.crs.to_epsg() != 4326:
        return f"unexpected CRS {gdf.crs}"
    if gdf.geometry.isna().any() or gdf.geometry.is_empty.any():
        return "missing geometries"
    if str(gdf["population"].dtype) != "Int64":
        return f"population has dtype {gdf['population'].dtype}"
    scope = deps if deps is not None else _ALL_DEPARTEMENTS
    try:
        _check_complete(gdf[["insee", "departement", "population", "epci"]].to_dict("records"),
                        scope, arrondissements=arrondissements, shown="cache")
    except (CptsGeoError, KeyError) as exc:
        return f"incomplete: {_short_exc(exc)}"
    return None


def _read_cache(
    path: Path,
    *,
    deps: tuple[str, ...] | None,
    arrondissements: bool,
    max_age: timedelta | None,
) -> gpd.GeoDataFrame | None:
    """Return the cached frame, or None when there is none, it is too old or unusable.

    An unusable file is reported with a warning and removed; a file too old (written more than
    ``max_age`` ago) or of another cache version is silently downloaded again.
    """
    if not path.is_file():
        return None
    try:
        gdf = gpd.read_parquet(path)
        meta = gdf.attrs.get("cpts_geo_cache")
        if not isinstance(meta, dict) or meta.get("version") != _CACHE_VERSION:
            log.info("cache file %s is of another version of cpts_geo: downloading again", path)
            return None
        problem = _cache_problem(gdf, deps, arrondissements)
    except Exception as exc:  # any reader error means a corrupt file: download again
        problem = f"{type(exc).__name__}: {_short_exc(exc)}"
    if problem is None:
        written = _written(meta)
        if max_age is not None and written is not None \
                and datetime.now(UTC) - written >= max_age:
            log.info("cache file %s was written on %s, more than %s ago: downloading again",
                     path, written.isoformat(), max_age)
            return None
        gdf.attrs.pop("cpts_geo_cache", None)
        return gdf
    warnings.warn(
        f"ignoring the corrupt cache file {path} ({problem}); downloading again",
        CptsGeoWarning,
        stacklevel=3,
    )
    try:
        path.unlink()
    except OSError:
        pass
    return None


def _remove_stale_temps(directory: Path) -> None:
    now = time.time()
    for tmp in directory.glob(".communes-*.tmp"):
        try:
            if now - tmp.stat().st_mtime > _STALE_TEMP_AGE:
                tmp.unlink()
        except OSError:
            pass


def _write_cache(
    path: Path,
    gdf: gpd.GeoDataFrame,
    *,
    source: str,
    base: str,
    deps: tuple[str, ...] | None,
    arrondissements: bool,
) -> None:
    """Write ``gdf`` atomically (temporary file in the same directory, fsync, os.replace).

    A cache that cannot be written is not an error: the data is returned with a warning.
    """
    out = gdf.copy(deep=False)
    out.attrs = {
        **gdf.attrs,
        "cpts_geo_cache": {
            **_cache_key(source, base, deps, arrondissements),
            "written": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(path.parent)
        with atomic_path(path) as tmp:  # removed on failure, renamed on success
            out.to_parquet(tmp, index=False)
        fsync_dir(path.parent)
    except (OSError, ValueError, TypeError) as exc:
        warnings.warn(
            f"could not write the cache file {path} ({_short_exc(exc)}); the data is returned "
            "but will be downloaded again next time",
            CptsGeoWarning,
            stacklevel=3,
        )
