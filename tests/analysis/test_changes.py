"""The change engine: snapshots of two states of the CPTS map and what changed between them.

Fast: no site is published; the publisher's change report is this same diff (tested once in
tests/publishing)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from helpers import SEEDS

from cpts_geo import compare, read_territories
from cpts_geo.analysis.changes import check_snapshot, diff, snapshot
from cpts_geo.analysis.inputs import prepare
from cpts_geo.errors import InputError


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
