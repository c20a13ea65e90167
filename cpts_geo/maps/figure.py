"""The coverage map as a static matplotlib figure (PNG, SVG, PDF) for reports.

Built with the object API (``matplotlib.figure.Figure``), without pyplot's global state, so it
works on a server. matplotlib is imported only when a figure is asked for.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from ..errors import public
from ..geography import LOCAL_CRS, METRO_CRS
from ..typing import DateLike
from .layers import Layers, build_layers, prepare_for_map, title_texts, vintage_text
from .mpl import inline_figure, matplotlib_for
from .styles import (
    GAP_FILL,
    GAP_LINE,
    OVERLAP_FILL,
    OVERLAP_LINE,
    PROPOSAL_LINE,
    PROPOSAL_STATUS,
    STATUS_ORDER,
    STATUS_STYLE,
    darker,
    status_of,
)

if TYPE_CHECKING:
    import matplotlib.axes
    import matplotlib.figure

__all__ = ["coverage_figure"]

def _rgba(hex_colour: str, alpha: float) -> tuple[float, float, float, float]:
    r, g, b = (int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return (r, g, b, alpha)


_MPL_DASH: dict[str | None, Any] = {None: "-", "8 4": "--", "3 4": ":", "1 5": (0, (1, 4)),
                                    "10 3 2 3": "-.", "10 6": (0, (6, 3))}


def _plot_layers(ax: Any, layers: Layers, mask: np.ndarray, crs: int | None) -> None:
    def proj(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        gdf = gdf[~(gdf.geometry.isna() | gdf.geometry.is_empty)]
        return gdf.to_crs(crs) if crs is not None else gdf

    cc = layers.communes[mask]
    codes = set(cc["insee"])
    cpts = proj(layers.cpts)
    if len(cpts):
        cpts = cpts[cpts.geometry.intersects(shapely.union_all(proj(cc).geometry.to_numpy()))
                    ] if len(cc) else cpts.iloc[0:0]
    for _, r in cpts.iterrows():
        fo, w, dash, _desc = STATUS_STYLE[status_of(r["status"])]
        edge = PROPOSAL_LINE if r["proposal"] else darker(r["colour"])
        gpd.GeoSeries([r.geometry], crs=cpts.crs).plot(
            ax=ax, facecolor=_rgba(r["colour"], fo), edgecolor=edge,
            linewidth=w * 0.6, linestyle=_MPL_DASH.get(dash, "-"), zorder=2)
    gaps = proj(layers.gaps) if len(layers.gaps) else layers.gaps
    proposed = cpts.geometry[cpts["proposal"].to_numpy(dtype=bool)] if len(cpts) else []
    if len(gaps) and len(proposed):  # what the propositions would fill is drawn as theirs
        rest = gaps.geometry.difference(shapely.union_all(np.asarray(proposed)))
        gaps = gaps.set_geometry(rest.to_numpy())
        gaps = gaps[~rest.is_empty.to_numpy() & (rest.area > (1e4 if crs else 1e-6)).to_numpy()]
    if len(gaps):
        gaps = gaps[gaps["insee"].map(lambda s: bool(codes & set(str(s).split(", "))))]
        if len(gaps):
            gaps.plot(ax=ax, facecolor=_rgba(GAP_FILL, 0.35), edgecolor=GAP_LINE,
                      hatch="///", linewidth=0.8, zorder=3)
    ov = layers.overlaps[layers.overlaps["insee"].isin(codes)]
    if len(ov):
        proj(ov).plot(ax=ax, facecolor=_rgba(OVERLAP_FILL, 0.4), edgecolor=OVERLAP_LINE,
                      hatch="xx", linewidth=0.8, zorder=4)
    if len(cc):
        proj(cc).plot(ax=ax, facecolor="none", edgecolor="#555555",
                      linewidth=0.15 if len(cc) > 3000 else 0.3, zorder=5)
    deps = layers.departements
    deps = deps[deps["departement"].isin(set(cc["departement"].astype(str)))]
    if len(deps):
        proj(deps).plot(ax=ax, facecolor="none", edgecolor="black", linewidth=1.0, zorder=6)
    ax.set_axis_off()
    ax.set_aspect("equal")


@public
def coverage_figure(
    communes: gpd.GeoDataFrame,
    territories: pd.DataFrame,
    *,
    departements: str | Sequence[str] | None = None,
    ax: matplotlib.axes.Axes | None = None,
    title: str | None = None,
    as_of: DateLike | None = None,
    statuses: Iterable[str] | str | None = None,
) -> matplotlib.figure.Figure:
    """Draw the picture of :func:`coverage_map` as a static matplotlib figure (PNG, SVG, PDF).

    Parameters
    ----------
    communes, territories, departements, title, as_of, statuses
        As in :func:`coverage_map`.
    ax : matplotlib.axes.Axes, optional
        Draw into these axes (their figure is returned); default: a new figure. The figure is
        built with the object API (``matplotlib.figure.Figure``), without pyplot's global state,
        so it works on a server (no display needed).

    Returns
    -------
    matplotlib.figure.Figure
        The figure; ``fig.savefig("carte.png", dpi=150)``.

    Raises
    ------
    ImportError
        If matplotlib is not installed (``pip install 'cpts-geo[plot]'``).

    Examples
    --------
    >>> import pandas as pd
    >>> from cpts_geo import load_communes
    >>> t = pd.DataFrame({"cpts": "Sud-Est Grenoblois", "status": "ACI signé",
    ...                   "insee": ["38421", "38158", "38309", "38179", "38533"]})
    >>> fig = coverage_figure(load_communes("38"), t)
    >>> fig.get_suptitle()
    'Couverture CPTS — Isère (38)'
    >>> "de la population couverte" in fig.axes[0].get_title()
    True
    """
    matplotlib_for("coverage_figure")
    from matplotlib.patches import Patch

    p, deps = prepare_for_map(communes, territories, departements, as_of, statuses)
    layers = build_layers(p, deps, "auto")
    main, sub = title_texts(layers, title)
    if ax is None:
        fig = inline_figure("coverage_figure", figsize=(10, 10), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    deps = layers.communes["departement"].astype(str)
    local = deps.map(LOCAL_CRS)
    metro = local.isna().to_numpy()
    if metro.any():
        _plot_layers(ax, layers, metro, METRO_CRS)
        overseas = sorted(set(deps[~metro]))
        for i, code in enumerate(overseas):
            inset = ax.inset_axes((0.0, 0.02 + i * 0.15, 0.13, 0.13))
            _plot_layers(inset, layers, (deps == code).to_numpy(), LOCAL_CRS[code])
            inset.set_title(code, fontsize=7)
    else:
        codes = sorted(set(local))
        _plot_layers(ax, layers, np.ones(len(deps), dtype=bool),
                     codes[0] if len(codes) == 1 else None)
    fig.suptitle(main, fontsize=14, fontweight="bold")
    ax.set_title(textwrap.fill(sub, 120), loc="center", fontsize=10)
    handles = []
    cpts = layers.cpts
    if 0 < len(cpts) <= 12:
        for _, r in cpts.sort_values("cpts").iterrows():
            fo, _w, dash, _desc = STATUS_STYLE[status_of(r["status"])]
            handles.append(Patch(facecolor=_rgba(r["colour"], fo), edgecolor=darker(r["colour"]),
                                 linestyle=_MPL_DASH.get(dash, "-"),
                                 label=f"{r['cpts']} ({status_of(r['status'])})"))
    present = {status_of(s) for s in cpts["status"]} if len(cpts) else set()
    for status in (*STATUS_ORDER, PROPOSAL_STATUS):
        if status in present:
            fo, _w, dash, desc = STATUS_STYLE[status]
            edge = PROPOSAL_LINE if status == PROPOSAL_STATUS else "#14507a"
            handles.append(Patch(facecolor=_rgba("#1f78b4", fo), edgecolor=edge,
                                 linestyle=_MPL_DASH.get(dash, "-"),
                                 label=f"statut {status} : {desc}"))
    handles.append(Patch(facecolor=_rgba(GAP_FILL, 0.35), edgecolor=GAP_LINE, hatch="///",
                         label="zone blanche (commune couverte par aucune CPTS)"))
    handles.append(Patch(facecolor=_rgba(OVERLAP_FILL, 0.4), edgecolor=OVERLAP_LINE,
                         hatch="xx", label="chevauchement (commune de plusieurs CPTS)"))
    legend = fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8,
                        frameon=False)
    legend.set_title(textwrap.fill(vintage_text(layers), 150), prop={"size": 6})
    legend.get_title().set_color("#444444")
    return fig
