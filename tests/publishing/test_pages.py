"""What the pages show, computed once for the whole site, is what each page's own filters and
sorts would give: a département's rows of the national tables, its gap zones' communes, a CPTS's
communes, and the rows of a CPTS page's table of communes as its template wrote them."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import SEEDS

from cpts_geo import load_communes, read_territories
from cpts_geo.analysis.aci import default_rules
from cpts_geo.analysis.inputs import prepare
from cpts_geo.errors import CptsGeoWarning
from cpts_geo.io.writers import records
from cpts_geo.publishing import pages as pages_module
from cpts_geo.publishing.pages import cpts_pages, departement_page, site_data
from cpts_geo.publishing.render import environment
from cpts_geo.publishing.site import _commune_rows, _Site

HOSTILE = "<b>L'Étang & « Co »</b>"


@pytest.fixture(scope="module")
def prepared():
    """Isère and Loire with the seeds, plus a CPTS on both (a hostile name, a shared commune)."""
    communes = load_communes(["38", "42"])
    seeds = read_territories(SEEDS)
    seeds = seeds[seeds["insee"].astype(str).str[:2].isin(["38", "42"])]
    extra = pd.DataFrame({"cpts": HOSTILE, "insee": ["38185", "42218", "42186"],
                          "status": "pré-projet"})
    terr = pd.concat([seeds, extra], ignore_index=True)
    with pytest.warns(CptsGeoWarning, match="adding up to more than 1"):  # 42186 twice
        p = prepare(communes, terr, whole="departement")
    return p, site_data(p, default_rules())


def _claims() -> pd.DataFrame:
    return pd.DataFrame({
        "scope_type": ["departement", "region", "departement", "nation", "region", None],
        "scope": ["38", "84", "42", "FR", "93", "38"],
        "value": [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]})


def _without_geometry(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(df.drop(columns="geometry", errors="ignore")).reset_index(drop=True)


def _zone_communes_alone(gaps: pd.DataFrame, pops: pd.DataFrame) -> dict[int, list]:
    """Each zone's communes as the page sorted them one zone at a time."""
    out = {}
    for zone, codes in zip(gaps["zone"], gaps["insee"], strict=True):
        members = pops.reindex(str(codes).split(", "))
        listed = pd.DataFrame({"insee": members.index, "nom": members["nom"].to_numpy(),
                               "population": pd.to_numeric(members["population"],
                                                           errors="coerce").to_numpy()})
        listed = listed.sort_values(["population", "nom"], ascending=[False, True],
                                    na_position="last")
        out[int(zone)] = [
            {"insee": r.insee, "nom": r.nom,
             "population": None if pd.isna(r.population) else int(r.population)}
            for r in listed.itertuples(index=False)]
    return out


def test_a_departement_page_holds_its_rows_of_the_national_tables(prepared):
    _, data = prepared
    claims = _claims()
    seen: dict[str, int] = {}
    for code in ("38", "42"):
        page = departement_page(data, code, claims)
        dep = data.cpts["departements"].str.split(",").map(lambda ds, c=code: c in ds)
        expected = {
            "coverage": data.departements[data.departements["departement"] == code],
            "cpts": data.cpts[dep.to_numpy(dtype=bool)],
            "gaps": data.gaps[data.gaps["departements"] == code],
            "overlaps": data.overlaps[data.overlaps["departement"] == code],
            "communes": data.communes[data.communes["departement"] == code],
            "timeline": data.timeline[data.timeline["departement"] == code],
        }
        expected = {k: _without_geometry(v) for k, v in expected.items()}
        expected["gaps"]["zone"] = np.arange(1, len(expected["gaps"]) + 1)
        region = "84"
        expected["claims"] = claims[
            ((claims["scope_type"] == "departement") & (claims["scope"] == code))
            | ((claims["scope_type"] == "region") & (claims["scope"] == region))
        ].reset_index(drop=True)
        for name, frame in expected.items():
            seen[name] = seen.get(name, 0) + len(frame)
            pd.testing.assert_frame_equal(getattr(page, name), frame, obj=name)
            if name != "communes":
                assert page.shown(name) == records(frame), name
        assert page.row == expected["coverage"].iloc[0].to_dict()
        assert page.zone_communes == _zone_communes_alone(expected["gaps"], data.by_insee())
        assert page.timeline.attrs == data.timeline.attrs
    assert all(seen.values()), seen  # every table has rows on a page


def test_gap_zones_sort_their_communes_as_each_zone_alone():
    """Ties by name then in the zone's order, unknown populations and codes last."""
    pops = pd.DataFrame({
        "nom": ["Aa", "Bb", "Aa", "Cc", "Dd", "Ee", "Aa"],
        "population": [100.0, 100.0, 100.0, np.nan, 5.0, 100.0, np.nan]},
        index=["01001", "01002", "01003", "01004", "01005", "01006", "01007"])
    gaps = pd.DataFrame({
        "zone": [1, 2, 3, 4],
        "insee": ["01002, 01003, 01001, 01004, 01009", "01005", "01007, 01004, 01006",
                  "01001, 01001"]})
    got = pages_module._zone_communes(gaps, pops)
    assert dict(enumerate(got, start=1)) == _zone_communes_alone(gaps, pops)
    assert [c["insee"] for c in got[0]] == ["01003", "01001", "01002", "01004", "01009"]
    assert pages_module._zone_communes(gaps.iloc[:0], pops) == []


def test_rows_of_each_value_and_of_each_item_of_a_list():
    values = pd.Series(["42", "38,42", None, "42,42", "", "69"], index=[9, 8, 7, 6, 5, 4],
                       dtype="str")
    by_item = pages_module._positions(values, sep=",")
    assert {k: v.tolist() for k, v in by_item.items()} == {
        "42": [0, 1, 3], "38": [1], "": [4], "69": [5]}
    assert {k: v.tolist() for k, v in pages_module._positions(values).items()} == {
        "42": [0], "38,42": [1], "42,42": [3], "": [4], "69": [5]}
    assert pages_module._positions(values.iloc[:0], sep=",") == {}


def _cpts_communes_alone(p, cpts_id: str, own: str) -> pd.DataFrame:
    """A CPTS's communes as its page made them one CPTS at a time."""
    ins = p.inside
    mine = ins[ins["cpts_id"].astype(str) == cpts_id].sort_values("insee")
    pos = mine["pos"].to_numpy()
    c = p.communes
    names: dict[str, list[str]] = {}
    for code, name in zip(ins["insee"].astype(str), ins["cpts"].astype(str), strict=True):
        names.setdefault(code, []).append(name)
    codes = mine["insee"].astype(str).to_numpy(dtype=object)
    return pd.DataFrame({
        "insee": pd.array(codes, dtype="str"),
        "nom": c["nom"].astype(str).to_numpy(dtype=object)[pos],
        "departement": c["departement"].astype(str).to_numpy(dtype=object)[pos],
        "population": pd.array(c["population"].to_numpy()[pos], dtype="Int64"),
        "share": mine["share"].to_numpy(),
        "other_cpts": ["; ".join(n for n in names.get(code, []) if n != own)
                       for code in codes],
    })


def test_cpts_pages_slice_one_table_of_their_communes(prepared):
    p, data = prepared
    pages = cpts_pages(p, data)
    assert len(pages) == len(data.cpts)
    members = pages[0].members
    assert all(page.members is members for page in pages)
    assert sum(page.rows.stop - page.rows.start for page in pages) == len(members)
    for page in pages:
        expected = _cpts_communes_alone(p, page.cpts_id, page.row["cpts"])
        pd.testing.assert_frame_equal(page.communes, expected, obj=page.cpts_id)
        assert page.communes.attrs == p.attrs
    hostile = next(page for page in pages if page.row["cpts"] == HOSTILE)
    assert hostile.departements == ["38", "42"]
    assert hostile.communes["other_cpts"].str.len().gt(0).any()


#: The rows of the table of communes as cpts.html wrote them, one commune at a time.
_LOOP = """{% from "_macros.html" import dep_links %}
{% for c in communes %}
<tr><td>{{ c.nom }}</td><td>{{ c.insee }}</td><td>{{ dep_links(c.departement, root) }}</td><td class="n" data-sort="{{ c.population|sortkey }}">{{ c.population|num }}</td><td class="n" data-sort="{{ c.share }}">{{ c.share|pct }}</td><td>{{ c.other_cpts }}</td></tr>
{% endfor %}
"""  # noqa: E501


def test_commune_rows_are_the_bytes_of_the_template_loop():
    env = environment()
    env.globals.update(dep_pages={"42"}, dep_names={"42": "Loire", "38": "Isère & <Co>"})
    members = pd.DataFrame({
        "insee": pd.array(["42218", "38185", "99999", "42001"], dtype="str"),
        "nom": [HOSTILE, "Grenoble", 'Un "nom"', "=SUM(1)"],
        "departement": ["42", "38", "99", "42"],
        "population": pd.array([171924, None, 0, 1234567], dtype="Int64"),
        "share": [1.0, math.nan, 0.3333333333333333, 0.5],
        "other_cpts": ["", "A; <B>", HOSTILE, "x & y"],
    })
    site = _Site(env=env, build=Path(tempfile.gettempdir()), attrs={}, territories="t",
                 generated="2026-01-01T00:00:00+00:00", stale=None, meta={},
                 funding_sources={})
    rows = _commune_rows(site, members, root="../../")
    assert len(rows) == len(members)
    expected = env.from_string(_LOOP).render(communes=records(members), root="../../")
    assert "".join(rows) == expected
    assert "&lt;b&gt;L&#39;Étang &amp; « Co »&lt;/b&gt;" in rows[0]
    assert "Isère &amp; &lt;Co&gt; (38)" in rows[1]
