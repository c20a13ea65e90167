"""ACI funding of each CPTS: the shipped CPTS with their sources, the seeds' figures against the
caps of their class, the convention at a bound through the whole computation."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers import SEEDS

from cpts_geo import aci_funding, read_territories
from cpts_geo.analysis.aci import default_rules
from cpts_geo.errors import InputError
from cpts_geo.io.rules import read_aci_rules


@pytest.fixture(scope="module")
def seeds():
    return read_territories(SEEDS)


@pytest.fixture(scope="module")
def funding(seeds, loire_rhone, isere):
    communes = pd.concat([loire_rhone, isere], ignore_index=True)
    communes.attrs = dict(isere.attrs)
    return aci_funding(communes, seeds).set_index("cpts")


def test_funding_table_of_the_shipped_cpts_with_sources(funding, seeds, raw_npm):
    raw = {c["code"]: c.get("population") for c in raw_npm("6.0.0")
           if c["type"] == "commune-actuelle"}
    for name, grp in seeds.groupby("cpts"):  # populations recomputed from the npm package
        assert funding.loc[name, "population"] == sum(raw[c] for c in grp["insee"])
    assert funding["size_class"].to_dict() == {
        "Sud-Est Grenoblois": 2, "Vallée du Gier": 3, "Vénissieux": 2}
    assert funding["rules_version"].to_dict() == {
        "Sud-Est Grenoblois": "aci-2019", "Vallée du Gier": "aci-avenant-2",
        "Vénissieux": "aci-2019"}
    assert funding.loc["Vallée du Gier", "version_basis"] == (
        "in force on the status date 2023-12-07")
    for name in ("Sud-Est Grenoblois", "Vénissieux"):
        row = funding.loc[name]
        assert (row["fonctionnement_eur"], row["max_annual_total_eur"]) == (60_000, 287_000)
        assert "mission_parcours" in row["not_established"]
    rules = default_rules()
    # each amount's source, as a planner can cite it: title, publisher, date, URL
    assert funding.loc["Vénissieux", "sources"].split(" | ") == [
        rules.source_text("concours-2020-10"), rules.source_text("qdm-2019-11-21-baba")]
    assert ("Missions, financement, montants : le b.a.-ba (Loan Tranthimy) — Le Quotidien du "
            "Médecin — 2019-11-21 — https://") in funding.loc["Vénissieux", "sources"]
    # avenant 2 publishes nothing for taille 3: every amount of the Vallée du Gier is absent
    gier = funding.loc["Vallée du Gier"]
    amounts = [c for c in funding.columns if c.endswith("_eur")]
    assert gier[amounts].isna().all() and gier["sources"] == ""
    assert gier["not_established"].split(", ") == [c.removesuffix("_eur") for c in amounts]
    assert funding.attrs["rules_id"] == rules.rules_id
    assert funding.attrs["population_year"] == 2026


def test_the_seeds_figures_are_within_the_caps_of_their_class(funding):
    rules = default_rules()
    # seed 004: 190 k€ fixed and 85 k€ variable for the Sud-Est Grenoblois (taille 2, ACI 2019)
    seg = funding.loc["Sud-Est Grenoblois"]
    assert seg["fonctionnement_eur"] <= 190_000 + 85_000 <= seg["max_annual_total_eur"]
    # seed 002: 241,875 € for the Vallée du Gier's first year (taille 3, avenant 2). The cap of
    # its class under avenant 2 is established by no source, so it is absent; the figure is
    # within the only sourced taille-3 cap and above its operating budget (ACI 2019), and
    # within the avenant-2 cap of the class above.
    gier = funding.loc["Vallée du Gier"]
    assert pd.isna(gier["max_annual_total_eur"])
    v2019, av2 = rules.versions
    assert (v2019.amount("fonctionnement", 3).amount_eur <= 241_875
            <= v2019.amount("max_annual_total", 3).amount_eur)
    assert 241_875 <= av2.amount("max_annual_total", 4).amount_eur
    # the population the seed gives (96,850) is taille 3 as well
    assert rules.versions[1].size_classes[2].low < 96_850 <= rules.versions[1].size_classes[2].high


def test_a_cpts_of_exactly_80000_inhabitants_is_placed_by_convention(loire):
    pop = float(loire.set_index("insee").loc["42218", "population"])  # Saint-Étienne
    t = pd.DataFrame({"cpts": ["Bord"], "insee": ["42218"], "share": [80_000 / pop]})
    row = aci_funding(loire, t).iloc[0]
    assert row["population"] == 80_000
    assert row["size_class"] == 2 and row["size_class_basis"].startswith("convention:")
    assert row["rules_version"] == "aci-avenant-2"
    assert row["version_basis"] == "no status date: the latest version"


def test_rules_from_a_file_or_a_dict(loire, tmp_path):
    data = read_aci_rules()
    data["versions"] = data["versions"][:1]  # a planner's copy with the 2019 agreement only
    t = pd.DataFrame({"cpts": ["A"], "insee": ["42218"], "status_date": ["2024-01-01"]})
    row = aci_funding(loire, t, rules=data).iloc[0]
    assert row["rules_version"] == "aci-2019" and row["max_annual_total_eur"] == 370_000
    with pytest.raises(InputError, match="`rules` was a int"):
        aci_funding(loire, t, rules=3)
    bad = tmp_path / "r.json"
    bad.write_text("[]", encoding="utf-8")
    with pytest.raises(InputError, match=r"r\.json: an ACI rules file is a JSON object"):
        aci_funding(loire, t, rules=bad)
