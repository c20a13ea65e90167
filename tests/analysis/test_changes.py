"""The change engine: snapshots of two states of the CPTS map and what changed between them.

Fast: no site is published; the publisher's change report is this same diff (tested once in
tests/publishing)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from helpers import SEEDS

from cpts_geo import compare, read_territories
from cpts_geo.analysis.changes import check_snapshot, coverage_timeline, diff, snapshot
from cpts_geo.analysis.inputs import prepare
from cpts_geo.errors import CptsGeoWarning, InputError


@pytest.fixture(scope="module")
def seeds():
    return read_territories(SEEDS)


@pytest.fixture(scope="module")
def communes(loire_rhone, isere):
    import geopandas as gpd

    out = gpd.GeoDataFrame(pd.concat([loire_rhone, isere], ignore_index=True), crs=4326)
    out.attrs = dict(isere.attrs)
    return out


def _changed(seeds: pd.DataFrame) -> pd.DataFrame:
    """Eybens leaves the SEG, Saint-Chamond is half in the Gier, Vénissieux is redated, and a
    new CPTS covers Grenoble and Échirolles."""
    t = seeds[seeds["insee"] != "38158"].copy()
    t.loc[t["insee"] == "42207", "share"] = 0.5
    t.loc[t["cpts"] == "Vénissieux", "status_date"] = pd.Timestamp("2019-10-01")
    new = pd.DataFrame({"cpts": "Grenoble", "insee": ["38185", "38151"], "status": "pré-projet"})
    return pd.concat([t[["cpts", "insee", "share", "status", "status_date"]], new],
                     ignore_index=True)


def test_a_state_compared_with_itself_reports_nothing(communes, seeds):
    c = compare(communes, seeds, seeds)
    assert set(c.cpts["change"]) == {"unchanged"}
    assert c.communes.empty
    assert (c.areas["delta"] == 0).all()
    assert c.to_dict()["communes"] == [] and all(a["delta"] == 0 for a in c.to_dict()["areas"])


def test_removing_one_cpts_reports_it_and_the_delta_of_each_departement(communes, seeds):
    after = seeds[seeds["cpts"] != "Vallée du Gier"]
    c = compare(communes, seeds, after)
    assert c.cpts.loc[c.cpts["change"] != "unchanged", ["cpts", "change"]].values.tolist() == [
        ["Vallée du Gier", "dissolved"]]
    gier = seeds[seeds["cpts"] == "Vallée du Gier"]
    assert set(c.communes["insee"]) == set(gier["insee"])
    assert set(c.communes["change"]) == {"left"}
    # the delta of each département it touches is its population there (recomputed here)
    areas = c.areas.set_index("departement")
    pop = communes.set_index("insee")["population"]
    for dep in ("42", "69"):
        lost = pop[[i for i in gier["insee"] if i[:2] == dep]].sum()
        total = communes.loc[communes["departement"] == dep, "population"].sum()
        assert areas.loc[dep, "delta"] == pytest.approx(-lost / total)
    assert areas.loc["38", "delta"] == 0


def test_every_kind_of_change(communes, seeds):
    c = compare(communes, seeds, _changed(seeds))
    rows = {r["cpts"]: r for r in c.to_dict()["cpts"]}
    assert rows["Grenoble"]["change"] == "created"
    assert rows["Sud-Est Grenoblois"]["communes_removed"] == ["38158"]
    assert rows["Vallée du Gier"]["shares"] == {"42207": [1.0, 0.5]}
    assert rows["Vénissieux"]["status_date"] == ["2019-09-25", "2019-10-01"]
    moved = {r["insee"]: r["change"] for r in c.to_dict()["communes"]}
    assert moved == {"38185": "entered", "38151": "entered", "38158": "left"}
    areas = c.areas.set_index("departement")
    assert areas.loc["38", "delta"] > 0 > areas.loc["42", "delta"]
    json.dumps(c.to_dict())  # JSON-ready


def test_a_renamed_cpts_is_a_change_not_a_new_one(communes, seeds):
    after = seeds.copy()
    after["cpts"] = after["cpts"].replace({"Vénissieux": "CPTS de Vénissieux"})
    after = after.drop(columns="cpts_id")
    c = compare(communes, seeds, after).to_dict()
    rec = next(r for r in c["cpts"] if r["cpts"] == "CPTS de Vénissieux")
    assert rec["change"] == "changed" and rec["renamed_from"] == "Vénissieux"
    assert rec["cpts_id_before"] == "venissieux"
    assert c["communes"] == []


def test_departements_restrict_the_report(communes, seeds):
    c = compare(communes, seeds, _changed(seeds), departements="Loire")
    assert set(c.cpts["cpts"]) == {"Vallée du Gier"}
    assert list(c.areas["departement"]) == ["42"]


def test_snapshots_are_json_and_damaged_ones_are_refused(communes, seeds):
    snap = snapshot(prepare(communes, seeds))
    assert json.loads(json.dumps(snap)) == snap
    assert snap["cpts"]["venissieux"]["communes"] == ["69259"]
    assert diff(snap, snap)["cpts"][0]["change"] == "unchanged"
    for bad in ({}, {"version": 1}, {"version": 1, "cpts": {"x": {}}, "rates": {}}, [1]):
        with pytest.raises(InputError, match="snapshot"):
            check_snapshot(bad)


# ---------------------------------------------------------------------------------------------
# Coverage over time
# ---------------------------------------------------------------------------------------------
#: A small dated file of real communes: Saint-Étienne and Saint-Chamond (A), half of L'Horme
#: and Longes (B) on the day Vénissieux signs (D), Saint-Chamond claimed again (C), and an
#: undated CPTS (E).
DATED = pd.DataFrame({
    "cpts": ["A", "A", "B", "B", "C", "D", "E"],
    "insee": ["42218", "42207", "42110", "69119", "42207", "69259", "69123"],
    "share": [1, 1, 0.5, 1, 1, 1, 1],
    "status_date": ["2020-07-09", "2020-07-09", "2021-03-01", "2021-03-01", "2022-06-15",
                    "2021-03-01", None],
})


def _recomputed(raw_npm, dep: str, day: pd.Timestamp) -> tuple[int, float, int]:
    """Population, covered population and CPTS of ``dep`` at ``day``, from the npm package."""
    raw = {c["code"]: (c["departement"], c.get("population") or 0) for c in raw_npm("6.0.0")
           if c["type"] == "commune-actuelle"}
    state = DATED[pd.to_datetime(DATED["status_date"]) <= day]
    claimed: dict[str, float] = {}
    for code, share in zip(state["insee"], state["share"], strict=True):
        claimed[code] = claimed.get(code, 0.0) + share
    covered = sum(raw[c][1] * min(1.0, s) for c, s in claimed.items() if raw[c][0] == dep)
    population = sum(p for d, p in raw.values() if d == dep)
    n_cpts = state.loc[state["insee"].map(lambda c: raw[c][0] == dep), "cpts"].nunique()
    return population, covered, n_cpts


@pytest.mark.filterwarnings("ignore:.*shares adding up to more than 1")
def test_timeline_equals_an_independent_recomputation_at_each_date(loire_rhone, raw_npm):
    with pytest.warns(CptsGeoWarning, match="1 CPTS have no status_date.*timeline.*: E"):
        tl = coverage_timeline(loire_rhone, DATED)
    steps = [(r.departement, r.date.date().isoformat(), r.cpts_entered)
             for r in tl.itertuples()]
    assert steps == [("42", "2020-07-09", "A"), ("42", "2021-03-01", "B"),
                     ("42", "2022-06-15", "C"), ("69", "2021-03-01", "B; D")]
    previous: dict[str, float] = {}
    for r in tl.itertuples():
        population, covered, n_cpts = _recomputed(raw_npm, r.departement, r.date)
        assert r.population == population and r.n_cpts == n_cpts
        assert r.covered_population == pytest.approx(covered, abs=0.05)
        assert r.coverage_rate == pytest.approx(covered / population)
        assert r.delta == pytest.approx(r.coverage_rate - previous.get(r.departement, 0.0))
        previous[r.departement] = r.coverage_rate
    # C claims Saint-Chamond again: one more CPTS, not one more inhabitant
    last = tl.iloc[2]
    assert last["delta"] == 0 and last["n_cpts"] == 3
    assert tl.attrs["undated_cpts"] == "E" and tl.attrs["population_year"] == 2026


@pytest.mark.filterwarnings("ignore:.*shares adding up to more than 1")
def test_each_step_of_the_timeline_is_what_compare_reports(loire_rhone):
    with pytest.warns(CptsGeoWarning):
        tl = coverage_timeline(loire_rhone, DATED)
    dated = DATED.dropna(subset=["status_date"])
    days = sorted(pd.to_datetime(dated["status_date"]).unique())
    for before, day in zip([None, *days[:-1]], days, strict=True):
        was = dated[pd.to_datetime(dated["status_date"]) <= before] if before else dated[:0]
        now = dated[pd.to_datetime(dated["status_date"]) <= day]
        c = compare(loire_rhone, was, now)
        created = set(c.cpts.loc[c.cpts["change"] == "created", "cpts"])
        step = tl[tl["date"] == day].set_index("departement")
        assert created == {n for e in step["cpts_entered"] for n in e.split("; ")}
        areas = c.areas.set_index("departement")
        for dep, r in step.iterrows():
            assert r["coverage_rate"] == pytest.approx(areas.loc[dep, "after_rate"])
            assert r["delta"] == pytest.approx(areas.loc[dep, "delta"])


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:national figures cover all of France")
def test_timeline_by_nation_statuses_and_bad_level(seeds, isere):
    tl = coverage_timeline(isere, seeds, by="nation")  # all of France, loaded whole
    assert tl["date"].dt.date.astype(str).tolist() == ["2019-09-25", "2020-07-09",
                                                       "2023-12-07"]
    assert tl["n_cpts"].tolist() == [1, 2, 3] and tl["population"].nunique() == 1
    assert tl["covered_population"].iloc[-1] == pytest.approx(
        compare(isere, seeds, seeds, by="nation").areas["after_covered_population"].iloc[0])
    assert coverage_timeline(isere, seeds, statuses="pré-projet").empty
    with pytest.raises(InputError, match="`by` was 'cpts'"):
        coverage_timeline(isere, seeds, by="cpts")
