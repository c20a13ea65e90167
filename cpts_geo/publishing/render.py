"""Rendering the site's files: HTML pages (Jinja templates, autoescaped), downloads, assets.

Every text from an input file reaches the pages through Jinja's autoescaping; the CSV downloads
neutralise cells that a spreadsheet would run as formulas.
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import geopandas as gpd
import jinja2
import pandas as pd

from ..io.writers import dump_json, records, spreadsheet_safe

__all__ = ["environment", "write_json", "write_table"]


def _num(value: Any, digits: int = 0) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, bool):
        return "oui" if value else "non"
    if isinstance(value, int | float):
        text = f"{value:,.{digits}f}"
        return text.replace(",", "\u202f").replace(".", ",")
    return str(value)


def _pct(value: Any) -> str:
    if value is None or pd.isna(value):
        return ""
    return f"{100 * value:.1f}".replace(".", ",") + "\u202f%"


def _metric(value: Any, metric: str, signed: bool = False) -> str:
    """A published or computed figure as French text: rates in percent, counts in units."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    rate = "rate" in metric or metric.startswith("share")
    number = 100 * float(value) if rate else float(value)
    text = _num(number, 1 if rate else 0)
    if signed and number > 0:
        text = "+" + text
    return text + ("\u202f%" if rate else "")


_METRIC_LABELS = {
    "coverage_rate": "taux de couverture",
    "coverage_rate_target": "objectif de taux de couverture",
    "n_cpts": "nombre de CPTS",
    "n_cpts_signed": "CPTS signataires de l'ACI",
    "n_cpts_target": "objectif de nombre de CPTS",
    "n_cpts_active": "CPTS actives",
    "n_cpts_projects": "projets de CPTS",
    "n_cpts_projects_funded": "projets de CPTS financés",
    "n_cpts_other": "autres CPTS",
    "n_communes_covered": "communes couvertes",
    "population_covered": "population couverte",
    "population_uncovered": "population non couverte",
    "share_population_uncovered": "part de la population non couverte",
}


def environment() -> jinja2.Environment:
    """The Jinja environment of the site's templates (autoescape on, strict undefined)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(files("cpts_geo") / "templates")),
        autoescape=True,  # every text from an input file is escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = _pct
    env.filters["num"] = _num
    env.filters["metric"] = _metric
    env.filters["metric_label"] = lambda m: _METRIC_LABELS.get(str(m), str(m))
    env.filters["sortkey"] = lambda v: "" if v is None or pd.isna(v) else v
    return env


def write_table(df: pd.DataFrame, directory: Path, stem: str) -> list[str]:
    """CSV (and GeoJSON when there are geometries) downloads of ``df``; return the file names.

    Cells that a spreadsheet would evaluate as a formula (``=``, ``+``, ``-``, ``@`` first) are
    prefixed with an apostrophe in the CSV.
    """
    names = []
    plain = spreadsheet_safe(pd.DataFrame(df.drop(columns="geometry", errors="ignore")))
    plain.to_csv(directory / f"{stem}.csv", index=False, lineterminator="\n")
    names.append(f"{stem}.csv")
    if isinstance(df, gpd.GeoDataFrame) and len(df) and df.geometry.notna().any():
        gdf = df[df.geometry.notna()].copy()
        for col in gdf.columns:
            if col != "geometry" and not pd.api.types.is_numeric_dtype(gdf[col]) \
                    and not pd.api.types.is_bool_dtype(gdf[col]):
                gdf[col] = gdf[col].astype(object).where(gdf[col].notna(), None).map(
                    lambda v: v if v is None else str(v))
        (directory / f"{stem}.geojson").write_text(
            gdf.to_json(drop_id=True, ensure_ascii=False, to_wgs84=True), encoding="utf-8"
        )
        names.append(f"{stem}.geojson")
    return names


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented UTF-8 JSON (NaN as null, dates ISO)."""
    with open(path, "w", encoding="utf-8") as fh:
        dump_json(obj, fh)


def table_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of ``df`` without geometry, JSON-ready (for templates and summaries)."""
    return records(df)


def read_json(path: Path) -> Any:
    """Read a JSON file written by :func:`write_json`."""
    return json.loads(path.read_text("utf-8"))
