"""Leaflet's files for offline maps, taken at run time from the ``django-js-lib-leaflet`` package.

Nothing of Leaflet is copied into this repository: the PyPI package (BSD-2-Clause, plain static
files, located without importing Django) is a dependency, and its files are either embedded in
a page (``"inline"``) or written once into a site's ``assets/`` folder (:func:`write_assets`).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
from functools import lru_cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from .._atomic import atomic_path
from .styles import esc, js

__all__ = ["write_assets"]

LEAFLET_DIST = "django-js-lib-leaflet==1.9.4.1"


def leaflet_dir() -> Traversable:
    hint = f"install it with `pip install {LEAFLET_DIST}` (a dependency of cpts-geo)"
    try:
        root = files("js_lib_leaflet")
    except ModuleNotFoundError as exc:
        raise ImportError(
            f"offline maps embed Leaflet from the package django-js-lib-leaflet: {hint}"
        ) from exc
    static = root / "static" / "js_lib_leaflet"
    if not (static / "leaflet.js").is_file() or not (static / "leaflet.css").is_file():
        raise ImportError(
            f"Leaflet's files are missing from the django-js-lib-leaflet package in {root}: "
            f"reinstall it ({hint})"
        )
    return static


def leaflet_images() -> list[Traversable]:
    return sorted(
        (p for p in (leaflet_dir() / "images").iterdir() if p.name.endswith(".png")),
        key=lambda p: p.name,
    )


def data_uri(item: Traversable) -> str:
    return "data:image/png;base64," + base64.b64encode(item.read_bytes()).decode("ascii")


@lru_cache(maxsize=1)
def inline_assets() -> str:
    """Leaflet's CSS (images as data URIs) and JS, ready to go in the page's ``<head>``."""
    static = leaflet_dir()
    script = (static / "leaflet.js").read_text(encoding="utf-8")
    css = (static / "leaflet.css").read_text(encoding="utf-8")
    # the source map is not shipped inline; drop the reference so no file is looked for
    script = re.sub(r"\n//# sourceMappingURL=\S+\s*$", "\n", script)
    # an inline script or style ends at the first "</script" / "</style": make sure none occurs
    script = re.sub(r"</(script)", r"<\\/\1", script, flags=re.IGNORECASE)
    css = re.sub(r"</(style)", r"<\\/\1", css, flags=re.IGNORECASE)
    uris = {p.name: data_uri(p) for p in leaflet_images()}
    css = re.sub(
        r"url\((['\"]?)images/([\w.-]+\.png)\1\)",
        lambda mo: f"url({uris[mo.group(2)]})" if mo.group(2) in uris else mo.group(0),
        css,
    )
    # markers (if a user adds some) take their icons from data URIs too
    icons = {
        "iconUrl": uris.get("marker-icon.png"),
        "iconRetinaUrl": uris.get("marker-icon-2x.png"),
        "shadowUrl": uris.get("marker-shadow.png"),
    }
    icon_js = (
        'L.Icon.Default.imagePath = "";\n'
        f"L.Icon.Default.mergeOptions({js({k: v for k, v in icons.items() if v})});"
    )
    return (
        "<!-- Leaflet (BSD-2-Clause), embedded from the PyPI package "
        f"{LEAFLET_DIST} by cpts_geo -->\n"
        f"<style>\n{css}\n</style>\n<script>\n{script}\n</script>\n<script>\n{icon_js}\n</script>"
    )


def linked_assets(prefix: str) -> str:
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    p = esc(prefix)
    return (
        f'<link rel="stylesheet" href="{p}leaflet.css"/>\n'
        f'<script src="{p}leaflet.js"></script>'
    )



def write_assets(directory: str | os.PathLike[str]) -> list[Path]:
    """Copy Leaflet's files (``leaflet.js``, ``leaflet.css``, ``images/``) into ``directory``.

    For a static site whose pages share one copy: write them once, then render each page with
    ``map_html(m, assets="<relative path to directory>/")``.

    Parameters
    ----------
    directory : str or path-like
        Destination (created if needed).

    Returns
    -------
    list of pathlib.Path
        The files written.

    Examples
    --------
    >>> import tempfile
    >>> sorted(p.name for p in write_assets(tempfile.mkdtemp()))[:3]
    ['layers-2x.png', 'layers.png', 'leaflet.css']
    """
    dest = Path(directory)
    static = leaflet_dir()
    items = [(static / "leaflet.js", dest / "leaflet.js"),
             (static / "leaflet.css", dest / "leaflet.css")]
    items += [(img, dest / "images" / img.name) for img in leaflet_images()]
    written = []
    for src, target in items:
        with atomic_path(target) as tmp, src.open("rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout)
        written.append(target)
    return written


