"""The one cache of downloaded reference data: GeoParquet files written atomically.

One file per request set (source, base URL, départements, arrondissements), named with a digest
of the request; a file that is unreadable, of another layout or incomplete is ignored (with a
warning) and downloaded again. Temporary files of killed processes are removed after an hour.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import geopandas as gpd
import platformdirs

from .._atomic import atomic_path, fsync_dir
from ..errors import CptsGeoWarning
from .http import _short_exc

__all__: list[str] = []

#: Version of the cache layout; bump it to ignore older cache files.
_CACHE_VERSION = 1
#: Temporary cache files older than this (seconds) are left-overs of a killed process.
_STALE_TEMP_AGE = 3600.0

_ENV_CACHE_DIR = "CPTS_GEO_CACHE_DIR"
_COLUMNS = ["insee", "nom", "departement", "region", "epci", "population", "geometry"]
_REQUIRED_ATTRS = ("source", "population_year", "retrieved")


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


def _cache_problem(gdf: gpd.GeoDataFrame) -> str | None:
    meta = gdf.attrs.get("cpts_geo_cache")
    if not isinstance(meta, dict) or meta.get("version") != _CACHE_VERSION:
        return "it was not written by this version of cpts_geo"
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
    return None


def _read_cache(path: Path) -> gpd.GeoDataFrame | None:
    """Return the cached frame, or None when there is none or it is unusable (with a warning)."""
    if not path.is_file():
        return None
    try:
        gdf = gpd.read_parquet(path)
        problem = _cache_problem(gdf)
    except Exception as exc:  # any reader error means a corrupt file: download again
        problem = f"{type(exc).__name__}: {_short_exc(exc)}"
    if problem is None:
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
        "cpts_geo_cache": _cache_key(source, base, deps, arrondissements),
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
