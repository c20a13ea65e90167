"""Where the files shipped with the package are: the reference bundle and its manifest.

The lowest layer of the package: it only locates files and reads the (small) manifest; reading
the Parquet tables is the job of :mod:`cpts_geo.sources.bundle`.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from .errors import DataSourceError

__all__ = ["bundle_path", "manifest"]


def bundle_path(name: str) -> Path:
    """Path of a file of the reference bundle (``cpts_geo/data/<name>``).

    Raises
    ------
    DataSourceError
        If the file is missing (a broken installation), naming it and how to fix it.
    """
    path = Path(str(files("cpts_geo") / "data" / name))
    if not path.is_file():
        raise DataSourceError(
            f"reference bundle file {path} is missing: reinstall cpts-geo, or rebuild the bundle "
            "with `bash scripts/build_reference.sh`"
        )
    return path


@lru_cache(maxsize=1)
def manifest() -> dict[str, Any]:
    """The bundle's ``manifest.json`` (vintages, sources, counts, geography, build report)."""
    return json.loads(bundle_path("manifest.json").read_text(encoding="utf-8"))
