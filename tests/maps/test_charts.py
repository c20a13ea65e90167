"""The timeline chart: the SVG of the site (escaped, no script, the figures of the table) and
the matplotlib figure (French labels, one line per area)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pandas as pd
import pytest
from helpers import SEEDS

from cpts_geo import coverage_timeline, read_territories
from cpts_geo.errors import InputError
from cpts_geo.maps.charts import timeline_figure, timeline_series, timeline_svg

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def timeline(loire_rhone):
    return coverage_timeline(loire_rhone, read_territories(SEEDS))


def test_series_follow_the_table(timeline):
    series = {s.code: s for s in timeline_series(timeline)}
    assert [s.label for s in series.values()] == ["Loire (42)", "Rhône (69)"]
    rhone = series["69"]
    assert [d.date().isoformat() for d in rhone.dates] == ["2019-09-25", "2023-12-07"]
    assert rhone.entered == ("Vénissieux", "Vallée du Gier")
    assert rhone.rates == tuple(timeline.loc[timeline["departement"] == "69", "coverage_rate"])
    with pytest.raises(InputError, match="not a coverage timeline"):
        timeline_series(pd.DataFrame({"x": [1]}))


def test_svg_is_well_formed_static_and_carries_the_figures(timeline):
    svg = timeline_svg(timeline[timeline["departement"] == "69"])
    root = ET.fromstring(svg)  # well-formed XML, inline in the page
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    assert root.find(f"{SVG}title").text == (
        "Couverture de la population par les CPTS au fil du temps")
    assert "<script" not in svg and "href" not in svg
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "Date du statut des CPTS" in texts and "Population couverte" in texts
    assert "+ Vénissieux → 3,4\u202f%" in texts and "+ Vallée du Gier → 3,5\u202f%" in texts
    assert {"2020", "2024"} <= set(texts) and "0\u202f%" in texts
    tips = [c.find(f"{SVG}title").text for c in root.iter(f"{SVG}circle")]
    assert tips == [
        "Rhône (69) — 25/09/2019 : 3,4\u202f% de la population couverte (65\u202f502 hab.) ; "
        "CPTS entrée(s) : Vénissieux",
        "Rhône (69) — 07/12/2023 : 3,5\u202f% de la population couverte (67\u202f152 hab.) ; "
        "CPTS entrée(s) : Vallée du Gier",
    ]
    # the line is a step: horizontal, then vertical at each status date, higher after each
    path = root.find(f"{SVG}path").get("d")
    ys = [float(v) for v in re.findall(r"V([\d.]+)", path)]
    assert len(ys) == 2 and ys[0] > ys[1]  # SVG y grows downwards
    assert timeline_svg(timeline.iloc[0:0]) == ""


def test_svg_escapes_names_from_inputs(loire):
    t = pd.DataFrame({"cpts": [HOSTILE], "insee": ["42218"], "status_date": ["2021-01-01"]})
    svg = timeline_svg(coverage_timeline(loire, t))
    assert "<script>" not in svg and "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    ET.fromstring(svg)


def test_a_short_range_gets_quarter_ticks(timeline):
    svg = timeline_svg(timeline[timeline["departement"] == "42"])  # one date: 7 December 2023
    texts = [t.text for t in ET.fromstring(svg).iter(f"{SVG}text")]
    assert "janv. 2024" in texts and "oct. 2023" in texts


@pytest.mark.slow
def test_matplotlib_figure_in_french(loire_rhone, tmp_path):
    fig = timeline_figure(loire_rhone, read_territories(SEEDS))
    ax = fig.axes[0]
    assert fig.get_suptitle() == "Couverture de la population par les CPTS au fil du temps"
    assert ax.get_xlabel() == "Date du statut des CPTS"
    assert ax.get_ylabel() == "Population couverte"
    assert [t.get_text() for t in ax.get_legend().texts] == ["Loire (42)", "Rhône (69)"]
    assert "populations légales en vigueur en 2026" in ax.get_title().lower()
    notes = {t.get_text() for t in ax.texts}
    assert "+ Vallée du Gier → 12,3\u202f%" in notes
    # each step line ends at the last rate of its area
    loire_line = ax.get_lines()[0]
    assert loire_line.get_ydata()[-1] == pytest.approx(0.12330310166340926)
    fig.savefig(tmp_path / "timeline.png", dpi=80)
    assert (tmp_path / "timeline.png").stat().st_size > 10_000
    only = timeline_figure(loire_rhone, read_territories(SEEDS), departements="Rhône")
    assert [t.get_text() for t in only.axes[0].get_legend().texts] == ["Rhône (69)"]
    with pytest.raises(InputError, match="with by='departement'"):
        timeline_figure(loire_rhone, read_territories(SEEDS), by="nation", departements="42")
