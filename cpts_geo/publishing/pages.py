"""What each page of the site shows, computed from prepared inputs (pure: no file is written).

The index holds the national, regional and departmental tables, the CPTS (with what the ACI
funding rules give their size class) and the changes since the last publication; each
département page holds its coverage, its coverage over time, its CPTS, its gap zones (zones
never cross the département's border there), its overlaps and its communes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from ..analysis.aci import AciRules
from ..analysis.changes import timeline_figures
from ..analysis.diagnostics import gap_zones, overlap_communes, territory_outlines
from ..analysis.funding import funding_figures
from ..analysis.inputs import Prepared
from ..analysis.proposals import without_proposals
from ..analysis.rates import area_rates, commune_figures, cpts_figures
from ..geography import departements

__all__ = ["DepartementPage", "SiteData", "departement_page", "site_data"]


@dataclass
class SiteData:
    """The national figures of a publication, computed once."""

    nation: pd.DataFrame
    regions: pd.DataFrame
    departements: pd.DataFrame
    cpts: gpd.GeoDataFrame
    communes: gpd.GeoDataFrame
    overlaps: gpd.GeoDataFrame
    gaps: gpd.GeoDataFrame  # zones within each département
    timeline: pd.DataFrame  # coverage of each département at each status date changing it
    undated: pd.DataFrame  # CPTS without a status date (not in the timeline): cpts, departements
    funding_sources: dict[str, dict[str, Any]]  # sources of the funding amounts shown, by id
    pages: list[str] = field(default_factory=list)


@dataclass
class DepartementPage:
    """The figures of one département's page."""

    code: str
    row: dict[str, Any]
    coverage: pd.DataFrame
    cpts: gpd.GeoDataFrame
    gaps: gpd.GeoDataFrame
    overlaps: gpd.GeoDataFrame
    communes: gpd.GeoDataFrame
    claims: pd.DataFrame  # published figures about this département or its région
    timeline: pd.DataFrame
    undated: list[str]  # CPTS of the département left out of its timeline (no status date)


def _with_funding(cpts: gpd.GeoDataFrame, p: Prepared,
                  rules: AciRules) -> tuple[gpd.GeoDataFrame, dict[str, dict[str, Any]]]:
    """The CPTS table with the funding its rules give, and the sources of those amounts."""
    funding = funding_figures(p, rules)
    amounts = [c for c in funding.columns if c.endswith("_eur")]
    keep = ["cpts_id", "rules_version", "version_basis", *amounts, "derived"]
    ids: dict[str, dict[str, Any]] = {}
    source_ids = []
    for r in funding.to_dict("records"):
        version, _ = rules.version_at(r["status_date"])
        used = [] if version is None else [
            a.source for a in version.amounts
            if a.taille == r["size_class"] and f"{a.item}_eur" in amounts]
        source_ids.append("; ".join(dict.fromkeys(used)))
        for sid in used:
            ids[sid] = dict(rules.sources[sid])
    extra = funding[keep].assign(funding_sources=source_ids)
    out = cpts.merge(extra, on="cpts_id", how="left")
    out = gpd.GeoDataFrame(out, geometry="geometry", crs=cpts.crs)
    out.attrs = dict(cpts.attrs)
    return out, dict(sorted(ids.items()))


def site_data(p: Prepared, rules: AciRules, pages: list[str] | None = None) -> SiteData:
    """National figures of prepared national inputs; ``pages`` default: départements with CPTS.

    Coverage rates, gap zones and timelines are those of the real CPTS: propositions (status
    ``"proposition"``) are listed and drawn, not counted, as on the maps.
    """
    cc = p.memo("commune_figures", commune_figures)
    table = p.memo("cpts_figures", cpts_figures)
    cpts = p.memo("cpts_outlines", lambda q: territory_outlines(q, table))
    cpts, funding_sources = _with_funding(cpts, p, rules)
    real = p.memo("without_proposals", without_proposals)
    timeline = real.memo("timeline", lambda q: timeline_figures(q, "departement"))
    real_table = real.memo("cpts_figures", cpts_figures)
    undated = real_table.loc[real_table["status_date"].isna(), ["cpts", "departements"]]
    deps = area_rates(real, "departement")
    touched = sorted(set(cc.loc[cc["covered"], "departement"]))
    return SiteData(
        nation=area_rates(real, "nation"),
        regions=area_rates(real, "region"),
        departements=deps,
        cpts=cpts,
        communes=cc,
        overlaps=overlap_communes(p, cc),
        gaps=real.memo("gaps_by_departement", lambda q: gap_zones(q, by_departement=True)),
        timeline=timeline,
        undated=undated.reset_index(drop=True),
        funding_sources=funding_sources,
        pages=touched if pages is None else pages,
    )


def departement_page(data: SiteData, code: str,
                     claims: pd.DataFrame | None = None) -> DepartementPage:
    """The figures of one département, taken from the national ones.

    ``claims``: the published-versus-computed table; the page keeps the claims about the
    département and its région.
    """
    dep = data.departements
    cov = dep[dep["departement"] == code].reset_index(drop=True)
    cpts = data.cpts[data.cpts["departements"].str.split(",").map(lambda ds: code in ds)]
    gaps = data.gaps[data.gaps["departements"] == code].copy()
    gaps["zone"] = np.arange(1, len(gaps) + 1)
    overlaps = data.overlaps[data.overlaps["departement"] == code]
    communes = data.communes[data.communes["departement"] == code]
    region = departements()[code].region
    mine = pd.DataFrame() if claims is None else claims[
        ((claims["scope_type"] == "departement") & (claims["scope"] == code))
        | ((claims["scope_type"] == "region") & (claims["scope"] == region))]
    timeline = data.timeline[data.timeline["departement"] == code]
    touching = [code in str(ds).split(",") for ds in data.undated["departements"]]
    undated = data.undated[np.asarray(touching, dtype=bool)]
    return DepartementPage(
        code=code,
        row=cov.iloc[0].to_dict(),
        coverage=cov,
        cpts=cpts.reset_index(drop=True),
        gaps=gaps.reset_index(drop=True),
        overlaps=overlaps.reset_index(drop=True),
        communes=communes.reset_index(drop=True),
        claims=mine.reset_index(drop=True),
        timeline=timeline.reset_index(drop=True),
        undated=sorted(undated["cpts"].astype(str)),
    )
