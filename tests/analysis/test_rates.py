"""Coverage, overlaps, gaps and outlines on real communes; figures checked independently."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import shapely
from helpers import SEEDS, VALLEE_DU_GIER

import cpts_geo
from cpts_geo import (
    commune_coverage,
    coverage,
    cpts_table,
    find_gaps,
    find_overlaps,
    read_territories,
    size_class,
    territory_geometries,
)
from cpts_geo.errors import CptsGeoWarning, InputError, TerritoryError


@pytest.fixture(scope="module")
def seeds():
    return read_territories(SEEDS)


def _t(rows):
    """Membership table from (cpts, insee[, share]) tuples."""
    cols = ["cpts", "insee", "share"][: len(rows[0])]
    return pd.DataFrame(rows, columns=cols)


def test_loire_and_rhone_coverage_from_the_shipped_file(seeds, loire_rhone, raw_npm):
    table = coverage(loire_rhone, seeds).set_index("departement")
    # independent recomputation from the raw npm package: published names -> raw entries
    raw = [c for c in raw_npm("6.0.0") if c["type"] == "commune-actuelle"]
    by_name = {(c["nom"], c["departement"]): c for c in raw}
    gier = [by_name.get((n.replace("’", "'"), "42")) or by_name[(n, "69")]
            for n in VALLEE_DU_GIER]
    gier_42 = sum(c["population"] for c in gier if c["departement"] == "42")
    gier_69 = sum(c["population"] for c in gier if c["departement"] == "69")
    venissieux = by_name[("Vénissieux", "69")]["population"]
    assert table.loc["42", "covered_population"] == gier_42
    assert table.loc["69", "covered_population"] == gier_69 + venissieux
    for dep in ("42", "69"):
        assert table.loc[dep, "population"] == sum(c["population"] for c in raw
                                                   if c["departement"] == dep)
    assert table.loc["42", "n_covered_communes"] == 25
    assert table.loc["69", "n_covered_communes"] == 3  # Longes, Trèves, Vénissieux
    # the Vallée du Gier counts in both départements
    assert table.loc["42", "n_cpts"] == 1 and table.loc["69", "n_cpts"] == 2
    assert (table["n_covered_communes"] + table["n_gap_communes"] == table["n_communes"]).all()
    assert np.allclose(table["covered_population"] + table["gap_population"], table["population"])
    assert table.loc["42", "coverage_rate"] == pytest.approx(gier_42 / table.loc["42",
                                                                                   "population"])
    assert table.loc["42", "nom"] == "Loire"
    assert table.attrs["population_year"] == 2026


def test_by_cpts(seeds, loire_rhone, isere, raw_npm):
    communes = pd.concat([loire_rhone, isere], ignore_index=True)
    table = cpts_table(communes, seeds).set_index("cpts")
    gier = table.loc["Vallée du Gier"]
    assert gier["departements"] == "42,69"
    assert gier["n_communes"] == 27
    assert gier["n_parts"] == 1
    assert gier["size_class"] == 3  # about 97,000 inhabitants
    assert gier["status"] == "ACI signé"
    seg = table.loc["Sud-Est Grenoblois"]
    assert seg["n_communes"] == 5 and seg["n_parts"] == 1
    raw = {c["code"]: c.get("population") for c in raw_npm("6.0.0")
           if c["type"] == "commune-actuelle"}
    assert seg["population"] == sum(raw[c] for c in ("38421", "38158", "38309", "38179",
                                                     "38533"))
    assert seg["size_class"] == 2
    assert seg["area_km2"] == pytest.approx(isere.set_index("insee").loc[
        ["38421", "38158", "38309", "38179", "38533"], "area_km2"].sum(), abs=0.01)


def test_by_region_and_nation_add_up(seeds, raw_npm):
    france = cpts_geo.load_communes()
    dep = coverage(france, seeds)
    reg = coverage(france, seeds, by="region")
    nat = coverage(france, seeds, by="nation")
    raw_total = sum(c.get("population") or 0 for c in raw_npm("6.0.0")
                    if c["type"] == "commune-actuelle"  # collectivités d'outre-mer: no boundary
                    and c["departement"] not in ("975", "977", "978", "984", "986", "987",
                                                 "988", "989"))
    assert nat["population"].iloc[0] == raw_total == reg["population"].sum() == dep[
        "population"].sum()
    assert nat["covered_population"].iloc[0] == pytest.approx(dep["covered_population"].sum())
    assert nat["nation"].iloc[0] == "France"
    assert len(reg) == 18 and len(dep) == 101
    ara = reg.set_index("region").loc["84"]
    assert ara["population"] == cpts_geo.load_regions("84")["population"].iloc[0]
    assert ara["covered_population"] == dep.set_index("departement").loc[
        ["38", "42", "69"], "covered_population"].sum()
    assert nat["n_cpts"].iloc[0] == 3


def test_figures_of_a_cpts_cover_all_its_communes(seeds, loire, loire_rhone):
    # the Vallée du Gier straddles the Rhône: its figures are never those of its Loire part
    with pytest.warns(CptsGeoWarning, match=r"cover all its communes.*département\(s\) 38, 69"):
        table = cpts_table(loire, seeds).set_index("cpts")
    assert table.loc["Vallée du Gier", "n_communes"] == 27
    whole = cpts_table(loire_rhone, seeds).set_index("cpts")
    assert table.loc["Vallée du Gier", "population"] == whole.loc["Vallée du Gier", "population"]
    # communes that do not say where they come from cannot be completed: refused
    anonymous = loire.copy()
    anonymous.attrs = {}
    with pytest.raises(InputError, match="does not say where it comes from"):
        cpts_table(anonymous, seeds)


def test_each_inhabitant_counts_once_and_shares_count_their_share(isere):
    pop = isere.set_index("insee")["population"]
    t = _t([("A", "38421", 1.0), ("B", "38421", 1.0),      # full overlap
            ("A", "38158", 0.5), ("B", "38158", 0.5),      # split: no overlap
            ("A", "38309", 1.0), ("B", "38309", 0.5),      # half claimed twice
            ("C", "38179", 0.3)])                          # partly covered
    row = coverage(isere, t).iloc[0]
    expected = pop["38421"] + pop["38158"] + pop["38309"] + 0.3 * pop["38179"]
    assert row["covered_population"] == pytest.approx(expected, abs=0.1)
    assert row["n_covered_communes"] == 4
    assert row["n_overlap_communes"] == 3  # in two CPTS each, the split one included
    assert row["overlap_population"] == pytest.approx(pop["38421"] + 0.5 * pop["38309"], abs=0.1)
    assert row["gap_population"] == pytest.approx(row["population"] - expected, abs=0.1)
    over = find_overlaps(isere, t).set_index("insee")
    assert set(over.index) == {"38421", "38309", "38158"}
    assert over.loc["38421", "cpts"] == "A; B"
    assert over.loc["38158", "overlap_population"] == 0  # shared out, nobody counted twice
    assert over.loc["38309", "overlap_population"] == pytest.approx(0.5 * pop["38309"], abs=0.1)
    by_cpts = cpts_table(isere, t).set_index("cpts")
    assert by_cpts.loc["C", "population"] == pytest.approx(0.3 * pop["38179"], abs=0.1)


def test_gap_zones_are_contiguous_groups_largest_first(isere):
    # cover all Isère except two separate groups of communes
    hole_a = ["38309"]                     # Poisat, inside the Grenoble area
    hole_b = ["38053", "38455"]            # Bourgoin-Jallieu and its neighbour Saint-Savin
    covered = isere.loc[~isere["insee"].isin(hole_a + hole_b), "insee"]
    t = pd.DataFrame({"cpts": "Isère", "insee": covered})
    gaps = find_gaps(isere, t)
    assert gaps["zone"].tolist() == [1, 2]
    assert gaps.iloc[0]["insee"] == "38053, 38455" and gaps.iloc[0]["n_communes"] == 2
    pop = isere.set_index("insee")["population"]
    assert gaps.iloc[0]["population"] == pop["38053"] + pop["38455"]
    assert gaps.iloc[1]["insee"] == "38309"
    assert gaps["enclave"].tolist() == [True, True]
    assert gaps["enclosed_by"].tolist() == ["Isère", "Isère"]
    assert shapely.is_valid(gaps.geometry.to_numpy()).all()
    area = isere.set_index("insee").loc[hole_b, "area_km2"].sum()
    assert gaps.iloc[0]["area_km2"] == pytest.approx(area, abs=0.01)


def test_enclave_needs_a_single_surrounding_cpts(isere):
    links = cpts_geo.load_contiguity(["38309"])
    neighbours = sorted(set(links["b"]) - {""})
    half = len(neighbours) // 2
    t = pd.DataFrame({"cpts": ["A"] * half + ["B"] * (len(neighbours) - half),
                      "insee": neighbours})
    gaps = find_gaps(isere, t).set_index("insee")
    poisat = gaps.loc["38309"]
    assert not poisat["enclave"]
    assert poisat["neighbour_cpts"] == "A; B"
    t_one = pd.DataFrame({"cpts": "A", "insee": neighbours})
    assert find_gaps(isere, t_one).set_index("insee").loc["38309", "enclave"]


def test_coastal_gap_is_not_an_enclave():
    finistere = cpts_geo.load_communes("29")
    # Le Conquet (29040) borders the sea; cover every other commune of the Finistère
    t = pd.DataFrame({"cpts": "Finistère", "insee": finistere.loc[
        finistere["insee"] != "29040", "insee"]})
    gaps = find_gaps(finistere, t).set_index("insee")
    assert not gaps.loc["29040", "enclave"]


def test_non_contiguous_cpts_and_outlines(isere):
    t = _t([("SEG", "38421"), ("SEG", "38309"), ("SEG", "38158"),
            ("Split", "38421"), ("Split", "38053")])
    outlines = territory_geometries(isere, t).set_index("cpts")
    assert outlines.loc["SEG", "n_parts"] == 1 and outlines.loc["SEG", "contiguous"]
    assert outlines.loc["Split", "n_parts"] == 2 and not outlines.loc["Split", "contiguous"]
    assert outlines.loc["Split", "n_polygons"] == 2
    seg = outlines.loc["SEG", "geometry"]
    parts = isere.set_index("insee").loc[["38421", "38309", "38158"]].geometry
    assert seg.area == pytest.approx(shapely.union_all(parts.to_numpy()).area, rel=1e-9)
    assert shapely.is_valid(outlines.geometry.to_numpy()).all()


def test_arrondissements_keep_the_city_total_right():
    rhone = cpts_geo.load_communes("69")
    arms = cpts_geo.load_communes("69", arrondissements=True).set_index("insee")
    t = _t([("Lyon 3", "69383")])
    row = coverage(rhone, t).iloc[0]
    assert row["population"] == rhone["population"].sum()
    assert row["covered_population"] == arms.loc["69383", "population"]
    assert row["n_communes"] == len(rhone) - 1 + 9  # Lyon counted as its 9 arrondissements
    # a CPTS listing the whole city next to one listing an arrondissement: Lyon 3e overlaps
    t2 = _t([("Lyon 3", "69383"), ("Lyon", "69123")])
    row2 = coverage(rhone, t2).iloc[0]
    lyon = rhone.set_index("insee").loc["69123", "population"]
    assert row2["covered_population"] == lyon
    assert row2["overlap_population"] == arms.loc["69383", "population"]
    cc = commune_coverage(rhone, t2)
    assert cc.set_index("insee").loc["69383", "cpts"] == "Lyon; Lyon 3"


def test_as_of_and_status_filters(isere):
    t = pd.DataFrame({
        "cpts": ["Old", "New", "Undated"],
        "insee": ["38421", "38158", "38309"],
        "status": ["ACI signé", "pré-projet", "ACI signé"],
        "status_date": pd.to_datetime(["2020-07-09", "2024-01-01", None]),
    })
    with pytest.warns(CptsGeoWarning, match="1 CPTS have no status_date.*Undated"):
        row = coverage(isere, t, as_of="2021-01-01").iloc[0]
    assert row["n_cpts"] == 1 and row["n_covered_communes"] == 1
    row = coverage(isere, t, statuses=["aci signe"]).iloc[0]
    assert row["n_cpts"] == 2
    with pytest.raises(InputError, match="`as_of` 'yesterday' is not a date"):
        coverage(isere, t, as_of="yesterday")


def test_size_classes():
    assert [size_class(p) for p in (0, 39_999, 40_000, 80_000, 80_001, 175_000, 175_001)] == [
        1, 1, 2, 2, 3, 3, 4]
    assert size_class(None) is None


def test_bad_arguments_are_refused_with_teaching_messages(isere):
    t = _t([("A", "38421")])
    with pytest.raises(InputError, match="`by` was 'commune' but is expected to be one of"):
        coverage(isere, t, by="commune")
    with pytest.raises(InputError, match=r"missing column\(s\) 'commune'"):
        coverage(isere, pd.DataFrame({"cpts": ["A"], "code": ["38421"]}))
    # a commune column of codes is a table planners write: accepted
    assert coverage(isere, pd.DataFrame({"cpts": ["A"], "commune": ["38421"]})).iloc[0][
        "n_covered_communes"] == 1
    with pytest.raises(InputError, match=r"`communes` lacks column\(s\) \['population'\]"):
        coverage(isere.drop(columns="population"), t)
    with pytest.raises(TerritoryError, match=r"row 2, column 'share': share 1\.5 is out of range"):
        coverage(isere, _t([("A", "38421", 1.5)]))
    with pytest.raises(TerritoryError, match=r"duplicate: commune 38421 .* rows 2 and 3"):
        coverage(isere, _t([("A", "38421"), ("A", "38421")]))


def test_territories_with_a_duplicate_index(isere):
    t = pd.concat([_t([("A", "38421")]), _t([("B", "38158")])])  # index 0, 0
    assert coverage(isere, t).iloc[0]["n_covered_communes"] == 2


def test_inputs_are_not_mutated(isere):
    t = _t([("A", "38421"), ("B", "38421")])
    before_c, before_t = isere.copy(), t.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        coverage(isere, t)
        find_gaps(isere, t)
        territory_geometries(isere, t)
    pd.testing.assert_frame_equal(t, before_t)
    pd.testing.assert_frame_equal(isere, before_c)


def test_enclave_next_to_lyon_at_either_granularity():
    rhone = cpts_geo.load_communes("69")
    links = cpts_geo.load_contiguity(["69266"])  # Villeurbanne
    around = [b for b in links.loc[links["length_km"] > 0, "b"] if b and b[:3] != "693"]
    assert "69123" in around  # the city and its arrondissements are both listed as neighbours
    t = pd.DataFrame({"cpts": "Big", "insee": around})
    gaps = find_gaps(rhone, t).set_index("insee")
    assert gaps.loc["69266", "enclave"] and gaps.loc["69266", "enclosed_by"] == "Big"
    # Lyon listed by arrondissement: the neighbours are the arrondissements
    arms = [b for b in links["b"] if b.startswith("693")]
    t2 = pd.DataFrame({"cpts": "Big", "insee": [b for b in around if b != "69123"] + arms})
    gaps2 = find_gaps(rhone, t2).set_index("insee")
    assert gaps2.loc["69266", "enclave"]
    arr_level = cpts_geo.load_communes("69", arrondissements=True)
    assert find_gaps(arr_level, t).set_index("insee").loc["69266", "enclave"]


def test_communes_without_boundary_do_not_split_a_cpts():
    cantal = cpts_geo.load_communes("15")
    t = _t([("Pinatelle", c) for c in ("15141", "15031", "15035", "15047", "15171")])
    row = cpts_table(cantal, t).iloc[0]
    assert row["n_communes"] == 5 and row["n_parts"] == 1


def test_raw_tables_are_validated_like_files(isere):
    pop = isere.set_index("insee")["population"]
    raw = pd.DataFrame({"cpts": ["A", "A"], "insee": [38421, "38158"],
                        "share": ["50 %", "0,3"], "status": ["aci signe", "ACI signé"],
                        "status_date": ["07/12/2020", "2020-12-07"]})
    row = coverage(isere, raw, as_of="10/12/2020").iloc[0]  # French dates, day first
    assert row["covered_population"] == pytest.approx(0.5 * pop["38421"] + 0.3 * pop["38158"],
                                                      abs=0.1)
    assert coverage(isere, raw, statuses=["ACI signé"]).iloc[0]["n_cpts"] == 1
    assert coverage(isere, raw, as_of="06/12/2020").iloc[0]["n_cpts"] == 0
    with pytest.raises(TerritoryError, match=r"row 2.*42999"):
        coverage(isere, pd.DataFrame({"cpts": ["A"], "insee": ["42999"]}))


def test_communes_with_a_city_and_its_arrondissements_are_refused():
    both = pd.concat([cpts_geo.load_communes("69"),
                      cpts_geo.load_communes("69", arrondissements=True)]).drop_duplicates(
        "insee")
    with pytest.raises(InputError, match=r"both the city \['69123'\] and arrondissements"):
        coverage(both, _t([("A", "69383")]))


def test_arrondissements_keep_the_city_total_of_another_year():
    rhone = cpts_geo.load_communes("69", year=2022)
    t = _t([("Lyon 3", "69383")])
    assert coverage(rhone, t).iloc[0]["population"] == rhone["population"].sum()
    anonymous = rhone.copy()
    anonymous.attrs = {}
    with pytest.warns(CptsGeoWarning, match="scaled to the city's population"):
        row = coverage(anonymous, t).iloc[0]
    assert row["population"] == rhone["population"].sum()
