"""What each page of the site shows, computed from prepared inputs (pure: no file is written).

The index holds the national, regional and departmental tables, the CPTS and the changes since
the last publication; each département page holds its coverage, its CPTS, its gap zones (zones
never cross the département's border there), its overlaps and its communes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from ..analysis.diagnostics import gap_zones, overlap_communes, territory_outlines
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


def site_data(p: Prepared, pages: list[str] | None = None) -> SiteData:
    """National figures of prepared national inputs; ``pages`` default: départements with CPTS.

    Coverage rates and gap zones are those of the real CPTS: propositions (status
    ``"proposition"``) are listed and drawn, not counted, as on the maps.
    """
    cc = p.memo("commune_figures", commune_figures)
    table = p.memo("cpts_figures", cpts_figures)
    cpts = p.memo("cpts_outlines", lambda q: territory_outlines(q, table))
    real = p.memo("without_proposals", without_proposals)
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
    return DepartementPage(
        code=code,
        row=cov.iloc[0].to_dict(),
        coverage=cov,
        cpts=cpts.reset_index(drop=True),
        gaps=gaps.reset_index(drop=True),
        overlaps=overlaps.reset_index(drop=True),
        communes=communes.reset_index(drop=True),
        claims=mine.reset_index(drop=True),
    )
