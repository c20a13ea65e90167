"""The coverage timeline as a step chart: inline SVG for the site, a matplotlib figure for reports.

Both draw the same series (:func:`timeline_series`: one line per area, a step at each status
date that changed its coverage, the CPTS that entered) with the same French labels. The SVG is
written by hand, so the published site needs neither matplotlib nor JavaScript; every text from
an input (CPTS names) is HTML-escaped. matplotlib is imported only when a figure is asked for.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from ..analysis.changes import coverage_timeline
from ..errors import InputError, public
from ..geography import normalize_departements
from ..typing import Level
from .mpl import inline_figure, matplotlib_for
from .styles import PALETTE, esc, fr_int, fr_pct

if TYPE_CHECKING:
    import matplotlib.axes
    import matplotlib.figure

__all__ = ["TimelineSeries", "timeline_figure", "timeline_series", "timeline_svg"]

TITLE = "Couverture de la population par les CPTS au fil du temps"
X_LABEL = "Date du statut des CPTS"
Y_LABEL = "Population couverte"
NOTE = ("Chaque CPTS est comptée avec son périmètre actuel à partir de sa date de statut ; "
        "les CPTS sans date ne sont pas comptées.")


@dataclass(frozen=True)
class TimelineSeries:
    """One line of the chart: an area and its steps."""

    code: str
    label: str  #: "Loire (42)"
    dates: tuple[pd.Timestamp, ...]
    rates: tuple[float, ...]
    entered: tuple[str, ...]  #: CPTS that entered at each step, "; "-joined
    covered: tuple[float, ...]


def timeline_series(table: pd.DataFrame, by: Level | None = None) -> list[TimelineSeries]:
    """The lines of a timeline table (:func:`cpts_geo.coverage_timeline`), one per area.

    Examples
    --------
    >>> t = pd.DataFrame({"departement": ["42", "42"], "nom": ["Loire", "Loire"],
    ...                   "date": pd.to_datetime(["2020-07-09", "2023-12-07"]),
    ...                   "coverage_rate": [0.1, 0.2], "covered_population": [7.0, 14.0],
    ...                   "cpts_entered": ["A", "B"]})
    >>> [(s.label, s.rates) for s in timeline_series(t)]
    [('Loire (42)', (0.1, 0.2))]
    """
    key = by or next((c for c in ("departement", "region", "nation") if c in table.columns),
                     None)
    if key is None or key not in table.columns:
        raise InputError("`table` is not a coverage timeline (cpts_geo.coverage_timeline): "
                         "it has no departement, region or nation column")
    out = []
    for code, grp in table.sort_values([key, "date"]).groupby(key, sort=True):
        nom = str(grp["nom"].iloc[0])
        label = nom if key == "nation" or nom == str(code) else f"{nom} ({code})"
        out.append(TimelineSeries(
            code=str(code), label=label,
            dates=tuple(pd.Timestamp(d) for d in grp["date"]),
            rates=tuple(float(r) for r in grp["coverage_rate"]),
            entered=tuple(str(e) for e in grp["cpts_entered"]),
            covered=tuple(float(c) for c in grp["covered_population"]),
        ))
    return out


def _domain(series: Sequence[TimelineSeries]) -> tuple[pd.Timestamp, pd.Timestamp, float, float]:
    """Date range and rate range (top, tick step) of the chart."""
    dates = [d for s in series for d in s.dates]
    first, last = min(dates), max(dates)
    span = last - first
    pad = max(span * 0.08, pd.Timedelta(days=120))
    top_rate = max([r for s in series for r in s.rates if not math.isnan(r)] + [0.0])
    step = next(s for s in (0.01, 0.02, 0.05, 0.1, 0.2, 0.25) if top_rate / s <= 5)
    top = max(step, math.ceil(top_rate / step - 1e-9) * step)
    if top_rate >= top - 1e-9 and top < 1:
        top += step  # a line at the very top would touch the frame
    return first - pad, last + pad, min(top, 1.0), step


_MONTHS = ("janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.",
           "nov.", "déc.")


def _ticks(start: pd.Timestamp, end: pd.Timestamp) -> list[tuple[pd.Timestamp, str]]:
    """Date ticks: each 1 January ("2024"), or each quarter ("juil. 2023") on a short range."""
    years = [pd.Timestamp(year=y, month=1, day=1) for y in range(start.year + 1, end.year + 1)]
    if len(years) >= 2:
        return [(t, str(t.year)) for t in years]
    quarters = pd.date_range(start.to_period("Q").end_time.normalize() + pd.Timedelta(days=1),
                             end, freq="QS")
    return [(t, f"{_MONTHS[t.month - 1]} {t.year}") for t in quarters]


def _fr_date(d: pd.Timestamp) -> str:
    return d.strftime("%d/%m/%Y")


def _step_label(entered: str, rate: float) -> str:
    """"+ Vallée du Gier → 12,3 %": who entered, and the area's rate from then on."""
    return f"+ {entered} → {fr_pct(rate)}"


def _pct_tick(value: float, step: float) -> str:
    digits = 0 if step >= 0.01 - 1e-12 and round(step * 100, 6).is_integer() else 1
    return f"{100 * value:.{digits}f}".replace(".", ",") + "\u202f%"


def timeline_svg(table: pd.DataFrame, by: Level | None = None, *, title: str | None = None,
                 width: int = 760, height: int | None = None) -> str:
    """The step chart of a timeline table as an inline SVG element (no script, no font file).

    Parameters
    ----------
    table : pandas.DataFrame
        A coverage timeline (:func:`cpts_geo.coverage_timeline`), possibly restricted.
    by : {"departement", "region", "nation"}, optional
        Its area column (default: the one it has).
    title : str, optional
        Accessible title (default: the chart's French title).
    width, height : int
        Size in pixels (the SVG scales with its container).

    Returns
    -------
    str
        ``<svg ...>...</svg>``; an empty string for an empty table.

    Examples
    --------
    >>> t = pd.DataFrame({"departement": ["42"], "nom": ["Loire"],
    ...                   "date": pd.to_datetime(["2023-12-07"]), "coverage_rate": [0.1233],
    ...                   "covered_population": [95453.0], "cpts_entered": ["<b>Gier</b>"]})
    >>> svg = timeline_svg(t)
    >>> svg.startswith("<svg") and "&lt;b&gt;Gier&lt;/b&gt;" in svg and "<b>" not in svg
    True
    """
    series = timeline_series(table, by)
    if not series:
        return ""
    start, end, top, step = _domain(series)
    n_legend_rows = math.ceil(len(series) / 3)
    height = height or 300 + 22 * n_legend_rows
    left, right, top_px = 64, width - 24, 28
    bottom = height - 56 - 22 * n_legend_rows
    total = (end - start).total_seconds()

    def x(d: pd.Timestamp) -> float:
        return left + (right - left) * (d - start).total_seconds() / total

    def y(rate: float) -> float:
        return bottom - (bottom - top_px) * (0.0 if math.isnan(rate) else rate) / top

    label = esc(title or TITLE)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-labelledby="timeline-title" font-family="system-ui, sans-serif" font-size="12">',
        f'<title id="timeline-title">{label}</title>',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    # axes and grid
    k = 0
    while k * step <= top + 1e-9:
        yy = y(k * step)
        parts.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{right}" y2="{yy:.1f}" '
                     f'stroke="{"#999999" if k == 0 else "#e5e5e5"}" stroke-width="1"/>')
        parts.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end" '
                     f'fill="#444444">{esc(_pct_tick(k * step, step))}</text>')
        k += 1
    for t, text in _ticks(start, end):
        xx = x(t)
        parts.append(f'<line x1="{xx:.1f}" y1="{top_px}" x2="{xx:.1f}" y2="{bottom}" '
                     'stroke="#f0f0f0" stroke-width="1"/>')
        parts.append(f'<text x="{xx:.1f}" y="{bottom + 16}" text-anchor="middle" '
                     f'fill="#444444">{esc(text)}</text>')
    parts.append(f'<text x="{(left + right) / 2:.1f}" y="{bottom + 34}" text-anchor="middle" '
                 f'fill="#444444">{esc(X_LABEL)}</text>')
    parts.append(f'<text x="14" y="{(top_px + bottom) / 2:.1f}" text-anchor="middle" '
                 f'fill="#444444" transform="rotate(-90 14 {(top_px + bottom) / 2:.1f})">'
                 f'{esc(Y_LABEL)}</text>')
    # one line per area, a marker at each step
    label_steps = len(series) == 1 and len(series[0].dates) <= 8
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        path = [f"M{x(start):.1f},{y(0.0):.1f}"]
        for d, r in zip(s.dates, s.rates, strict=True):
            path.append(f"H{x(d):.1f}V{y(r):.1f}")
        path.append(f"H{x(end):.1f}")
        parts.append(f'<path d="{"".join(path)}" fill="none" stroke="{colour}" '
                     f'stroke-width="2.5"><title>{esc(s.label)}</title></path>')
        for d, r, e, c in zip(s.dates, s.rates, s.entered, s.covered, strict=True):
            tip = (f"{s.label} — {_fr_date(d)} : {fr_pct(r)} de la population couverte "
                   f"({fr_int(c)} hab.)" + (f" ; CPTS entrée(s) : {e}" if e else ""))
            parts.append(f'<circle cx="{x(d):.1f}" cy="{y(r):.1f}" r="4" fill="{colour}" '
                         f'stroke="#ffffff" stroke-width="1"><title>{esc(tip)}</title>'
                         '</circle>')
            if label_steps and e:
                anchor = "end" if x(d) > (left + right) / 2 else "start"
                dx = -6 if anchor == "end" else 6
                parts.append(f'<text x="{x(d) + dx:.1f}" y="{y(r) - 8:.1f}" '
                             f'text-anchor="{anchor}" fill="#222222">'
                             f'{esc(_step_label(e, r))}</text>')
    # legend below the axis
    for i, s in enumerate(series):
        row, col = divmod(i, 3)
        lx = left + col * ((right - left) / 3)
        ly = bottom + 52 + 20 * row
        colour = PALETTE[i % len(PALETTE)]
        parts.append(f'<line x1="{lx:.1f}" y1="{ly - 4}" x2="{lx + 22:.1f}" y2="{ly - 4}" '
                     f'stroke="{colour}" stroke-width="2.5"/>')
        parts.append(f'<text x="{lx + 28:.1f}" y="{ly}" fill="#222222">{esc(s.label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


@public
def timeline_figure(
    communes: pd.DataFrame,
    territories: pd.DataFrame,
    *,
    by: Level = "departement",
    departements: str | Iterable[str] | None = None,
    statuses: Iterable[str] | str | None = None,
    ax: matplotlib.axes.Axes | None = None,
    title: str | None = None,
) -> matplotlib.figure.Figure:
    """Coverage over time as a step chart: one line per area, a step at each status date.

    The figures are those of :func:`cpts_geo.coverage_timeline` (whole areas, one population
    vintage, each CPTS with its current perimeter from its status date; CPTS without a date left
    out with a warning). Each line starts at 0 % before the first CPTS of its area; markers
    carry the CPTS that entered. Labels are in French.

    Parameters
    ----------
    communes, territories, by, statuses
        As in :func:`cpts_geo.coverage_timeline`.
    departements : str or iterable of str, optional
        Draw only these départements' lines (with ``by="departement"``).
    ax : matplotlib.axes.Axes, optional
        Draw into these axes (their figure is returned); default: a new figure, built with the
        object API (no pyplot state, works on a server).
    title : str, optional
        Main title (default: "Couverture de la population par les CPTS au fil du temps").

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ImportError
        If matplotlib is not installed (``pip install 'cpts-geo[plot]'``).

    See Also
    --------
    cpts_geo.coverage_timeline : the figures drawn.

    Examples
    --------
    >>> import pandas as pd
    >>> from cpts_geo import load_communes
    >>> t = pd.DataFrame({"cpts": ["A", "B"], "insee": ["42218", "42207"],
    ...                   "status_date": ["2020-07-09", "2023-12-07"]})
    >>> fig = timeline_figure(load_communes("42"), t)
    >>> fig.axes[0].get_ylabel(), [t.get_text() for t in fig.axes[0].get_legend().texts]
    ('Population couverte', ['Loire (42)'])
    """
    mpl = matplotlib_for("timeline_figure")
    deps = normalize_departements(departements, what="departements")
    if deps is not None and by != "departement":
        raise InputError("`departements` selects lines of a timeline by département: use it "
                         "with by='departement'")
    table = coverage_timeline(communes, territories, by=by, statuses=statuses)
    if deps is not None:
        table = table[table["departement"].isin(deps)]
    series = timeline_series(table, by)
    if ax is None:
        fig = inline_figure("timeline_figure", figsize=(10, 5.5), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    if not series:
        ax.text(0.5, 0.5, "Aucune CPTS datée sur ce territoire", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
        fig.suptitle(title or TITLE, fontsize=13, fontweight="bold")
        return fig
    start, end, top, step = _domain(series)
    annotate = sum(len(s.dates) for s in series) <= 10
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        xs = [start, *s.dates, end]
        ys = [0.0, *s.rates, s.rates[-1]]
        ax.step(xs, ys, where="post", color=colour, linewidth=2.2, label=s.label)
        ax.plot(s.dates, s.rates, "o", color=colour, markersize=5)
        if annotate:
            for d, r, e in zip(s.dates, s.rates, s.entered, strict=True):
                if e:  # labels of the right half point left, so that they stay in the frame
                    right_half = (d - start) > (end - start) / 2
                    ax.annotate(_step_label(e, r), (d, r), textcoords="offset points",
                                xytext=(-5 if right_half else 5, 6), fontsize=8,
                                ha="right" if right_half else "left", color="#222222")
    ax.set_xlim(start, end)
    ax.set_ylim(0, top)
    ax.yaxis.set_major_locator(mpl.ticker.MultipleLocator(step))
    ax.yaxis.set_major_formatter(mpl.ticker.FuncFormatter(lambda v, _: _pct_tick(v, step)))
    ticks = _ticks(start, end)
    ax.set_xticks([t for t, _ in ticks], [text for _, text in ticks])
    ax.grid(True, color="#e5e5e5")
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(Y_LABEL)
    ax.legend(loc="upper left", fontsize=9, frameon=False)
    year = table.attrs.get("population_year")
    sub = NOTE + (f" Populations légales en vigueur en {year}." if year else "")
    fig.suptitle(title or TITLE, fontsize=13, fontweight="bold")
    ax.set_title(sub, fontsize=8, color="#444444", wrap=True)
    return fig
