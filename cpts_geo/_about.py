"""What a bug report needs: the versions of cpts_geo, its dependencies and the bundle's data."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

from ._data import manifest

__all__ = ["__version__", "show_versions"]

#: The version of cpts_geo (the one of ``pyproject.toml``; a test checks they agree).
__version__ = "0.2.0"

_PACKAGES = ("cpts-geo", "geopandas", "shapely", "pandas", "numpy", "pyarrow", "pyogrio",
             "pyproj", "folium", "requests", "openpyxl", "scipy", "jinja2", "matplotlib",
             "django-js-lib-leaflet")


def versions() -> dict[str, object]:
    """The versions and vintages :func:`show_versions` prints, as a dict."""
    info = manifest()
    packages: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    import shapely

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": packages,
        "geos": shapely.geos_version_string,
        "bundle": {
            "cog_year": info["cog_year"],
            "population_years": info["population_years"],
            "boundaries": info["sources"]["boundaries"]["package"],
            "populations": sorted(v["package"] for v in info["sources"]["populations"].values()),
        },
    }


def show_versions() -> None:
    """Print what a bug report needs: Python, the packages, GEOS and the bundle's vintages.

    Examples
    --------
    >>> show_versions()  # doctest: +ELLIPSIS
    cpts_geo ...
    python: ...
    """
    v = versions()
    packages = v["packages"]
    assert isinstance(packages, dict)
    print(f"cpts_geo {packages['cpts-geo']}")
    print(f"python: {v['python']} ({v['platform']})")
    for name, version in packages.items():
        if name != "cpts-geo":
            print(f"{name}: {version or 'not installed'}")
    print(f"GEOS: {v['geos']}")
    bundle = v["bundle"]
    assert isinstance(bundle, dict)
    print(f"bundle: COG {bundle['cog_year']}, populations in force in "
          f"{', '.join(map(str, bundle['population_years']))}")
    print(f"bundle sources: {bundle['boundaries']}; {'; '.join(bundle['populations'])}")
