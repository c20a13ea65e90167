"""The territory files shipped in data/ and the published figures: sourced rows, COG 2026 codes,
and the PACA figures recomputed independently from the raw npm package files."""

from __future__ import annotations

import csv
import warnings
from collections import defaultdict

import pandas as pd
import pytest
from helpers import ROOT

import cpts_geo
from cpts_geo.errors import CptsGeoWarning

TERRITORIES = ROOT / "data" / "territories"
PACA = TERRITORIES / "cpts_paca.csv"
PACA_DEPS = ("04", "05", "06", "13", "83", "84")


def _rows(path):
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def shipped():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CptsGeoWarning)  # the published spellings kept as such
        return cpts_geo.read_territories(TERRITORIES)


def test_every_row_has_a_source_and_a_current_code(shipped):
    for path in sorted(TERRITORIES.glob("*.csv")):
        rows = _rows(path)
        assert rows and all(r["source"].strip() for r in rows), path.name
        assert list(rows[0]) == ["cpts", "cpts_id", "insee", "commune_publiee", "departement",
                                 "status", "status_date", "source", "note"]
    # read together: no CPTS in two files, every code current (COG 2026), no code changed
    assert shipped["cpts_id"].is_unique is False and shipped.attrs["n_cpts"] == 74
    raw_codes = sorted(r["insee"] for p in TERRITORIES.glob("*.csv") for r in _rows(p))
    assert sorted(shipped["insee"]) == raw_codes


def _raw_units(raw):
    """PACA units of the raw npm package: communes, with Marseille by arrondissement."""
    units = {c["code"]: c for c in raw if c.get("region") == "93"
             and c["type"] in ("commune-actuelle", "arrondissement-municipal")
             and c["code"] != "13055"}
    return units


@pytest.mark.parametrize("version", ["6.0.0", "4.0.0"])
def test_paca_coverage_recomputed_from_the_raw_package(raw_npm, version):
    raw = raw_npm(version)
    units = _raw_units(raw)
    listed = {r["insee"] for r in _rows(PACA)}
    assert listed <= set(units)
    total, covered = defaultdict(int), defaultdict(int)
    for code, c in units.items():
        for area in (c["departement"], "93"):
            total[area] += c["population"]
            covered[area] += c["population"] if code in listed else 0
    year = {"6.0.0": 2026, "4.0.0": 2024}[version]
    communes = cpts_geo.load_communes(regions="93", year=year)
    t = cpts_geo.read_territories(PACA)
    deps = cpts_geo.coverage(communes, t).set_index("departement")
    region = cpts_geo.coverage(communes, t, by="region").set_index("region")
    for dep in PACA_DEPS:
        assert deps.loc[dep, "population"] == total[dep]
        assert deps.loc[dep, "covered_population"] == covered[dep]
    assert region.loc["93", "covered_population"] == covered["93"]
    assert region.loc["93", "population"] == total["93"]
    if version == "6.0.0":  # the figures data/README.md quotes
        assert covered["93"] == 5_117_871 and total["93"] == 5_218_960
        assert round(100 * deps.loc["04", "coverage_rate"], 1) == 90.2


def test_paca_cpts_overlaps_and_gaps():
    t = cpts_geo.read_territories(PACA)
    communes = cpts_geo.load_communes(regions="93")
    assert t["cpts_id"].nunique() == 70
    over = cpts_geo.find_overlaps(communes, t).set_index("insee")
    assert over["n_cpts"].to_dict() == {"06088": 3, "83137": 2}  # Nice, Toulon
    gaps = cpts_geo.find_gaps(communes, t)
    assert gaps["n_communes"].sum() == 46
    assert "13201" in ", ".join(gaps["insee"])  # Marseille 1er, in no CPTS
    table = cpts_geo.cpts_table(communes, t)
    assert (table["n_parts"] == 1).all()  # each CPTS is one block of neighbouring communes


def test_champsaur_against_the_seed(raw_npm):
    rows = [r for r in _rows(PACA) if r["cpts_id"] == "champsaur-valgaudemar"]
    assert len(rows) == 25 and {r["status"] for r in rows} == {"ACI signé"}
    assert {r["status_date"] for r in rows} == {"2020-12-07"}
    pop = {c["code"]: c.get("population") for c in raw_npm("6.0.0")
           if c["type"] == "commune-actuelle"}
    assert sum(pop[r["insee"]] for r in rows) == 11_683  # the seed: « 11 000 habitants »


def test_ondaine_forez_straddles_the_loire_and_the_haute_loire():
    rows = _rows(TERRITORIES / "cpts_loire_ars.csv")
    assert len(rows) == 25 and sum(r["departement"] == "43" for r in rows) == 6
    chenereilles = next(r for r in rows if r["commune_publiee"] == "Chenereilles")
    assert chenereilles["insee"] == "42060"


def test_published_figures_carry_their_source():
    claims = cpts_geo.load_published_figures()
    assert len(claims) >= 50
    assert claims["source_url"].str.startswith("http").all()
    assert claims["quote"].notna().all()
    loire = claims[(claims["scope"] == "42") & (claims["metric"] == "coverage_rate")]
    assert loire[["value", "date"]].values.tolist() == [
        [0.4, "2023-11-08"], [0.7, "2023-11-08"], [0.8, "2023-12-07"], [0.9, "2023-12-13"]]
    paca = claims[(claims["scope"] == "93") & (claims["metric"] == "coverage_rate")].iloc[0]
    assert "71 qui couvriront bientôt 96 %" in paca["quote"]


def test_reconcile_paca_and_the_loire(shipped, raw_npm):
    r = cpts_geo.reconcile(None, shipped, complete={"region": ["93"]}, as_of="2026-01-31")
    paca = r[(r["scope"] == "93") & (r["metric"] == "coverage_rate")].iloc[0]
    assert paca["compared"] and paca["population_year"] == 2024
    # recomputed from the raw package of the populations in force in 2024
    units = _raw_units(raw_npm("4.0.0"))
    listed = {x["insee"] for x in _rows(PACA)}
    expected = (sum(c["population"] for k, c in units.items() if k in listed)
                / sum(c["population"] for c in units.values()))
    assert paca["computed"] == pytest.approx(expected)
    assert paca["difference"] == pytest.approx(expected - 0.96)
    assert "bientôt" in paca["explanation"] and "comptés deux fois" in paca["explanation"]
    count = r[(r["scope"] == "93") & (r["metric"] == "n_cpts") & (r["claim_date"] == "2024-03")]
    assert count[["claimed", "computed"]].values.tolist() == [[71.0, 70.0]]
    # the Loire is not listed completely: never compared, the shipped CPTS give a floor
    loire = r[r["scope"] == "42"]
    assert not loire["compared"].any() and loire["computed"].isna().all()
    comparable = loire[loire["metric"].isin(["coverage_rate", "n_cpts_signed"])]
    assert comparable["explanation"].str.contains("ne liste pas toutes les CPTS").all()
    floor = "les 2 CPTS du fichier y couvrent aujourd'hui 20,7 % de la population"
    assert floor in loire["explanation"].iloc[0]
    # signatures cannot be counted from a listing where most CPTS have no status
    signed = r[(r["scope"] == "93") & (r["metric"] == "n_cpts_signed")].iloc[0]
    assert not signed["compared"] and "statut" in signed["explanation"]


def test_read_a_folder_or_several_files_and_refuse_a_cpts_in_two(tmp_path):
    twice = tmp_path / "twice.csv"
    pd.DataFrame({"cpts": ["Vénissieux"], "insee": ["69259"]}).to_csv(twice, index=False)
    with pytest.raises(cpts_geo.TerritoryError, match=r"'venissieux' is also in cpts_seeds.csv"):
        cpts_geo.read_territories([TERRITORIES / "cpts_seeds.csv", twice])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(cpts_geo.InputError, match="holds no territory file"):
        cpts_geo.read_territories(empty)
