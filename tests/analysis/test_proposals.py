"""Candidate CPTS on real bundle data: exact cover, contiguity, bounds or reasons, the count,
determinism, input order, the round trip through read_territories."""

from __future__ import annotations

import time
import warnings
from functools import cache, lru_cache

import numpy as np
import pandas as pd
import pytest
from helpers import ROOT, SEEDS
from scipy import sparse
from scipy.sparse.csgraph import connected_components

import cpts_geo
from cpts_geo import InputError, propose_territories
from cpts_geo.analysis.aci import size_class
from cpts_geo.sources.bundle import DRAWN_INSIDE

SHIPPED = ROOT / "data" / "territories"
MIN, MAX = 40_000, 175_000


@cache
def communes(dep: str, arrondissements: bool = True):
    return cpts_geo.load_communes(dep, arrondissements=arrondissements)


@lru_cache(maxsize=1)
def shipped():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # two misspelt names in the Loire file
        return cpts_geo.read_territories(SHIPPED)


@cache
def proposed(dep: str, territories: str = "none", target: int | None = None, **kw):
    t = shipped() if territories == "shipped" else None
    t0 = time.perf_counter()
    result = propose_territories(communes(dep), t, departements=dep, target=target, **kw)
    return result, time.perf_counter() - t0


@lru_cache(maxsize=1)
def borders() -> pd.DataFrame:
    links = cpts_geo.load_contiguity()
    return links[(links["b"] != "") & (links["length_km"] > 0)]


def contiguous(codes: list[str], links: pd.DataFrame | None = None) -> bool:
    """One group of communes sharing borders of positive length (independent of the package's
    graph: straight from the bundle's contiguity); a commune the bundle does not draw counts
    as touching the commune that covers it, or the others inside it."""
    idx = {c: i for i, c in enumerate(codes)}
    links = borders() if links is None else links
    sel = links["a"].isin(idx) & links["b"].isin(idx)
    a = [idx[x] for x in links.loc[sel, "a"]]
    b = [idx[x] for x in links.loc[sel, "b"]]
    hosts = {}
    for c in codes:
        if c in DRAWN_INSIDE:
            host = DRAWN_INSIDE[c] if DRAWN_INSIDE[c] in idx else hosts.setdefault(
                DRAWN_INSIDE[c], c)
            a.append(idx[c])
            b.append(idx[host])
    n = len(codes)
    adj = sparse.coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    return connected_components(adj, directed=False)[0] == 1


def check(result, dep, territories=None, min_pop=MIN, max_pop=MAX):
    """Every uncovered commune exactly once, contiguous candidates, bounds or a reason, and
    figures that add up."""
    c = communes(dep)
    covered = set() if territories is None else set(territories["insee"])
    uncovered = set(c.loc[(c["departement"] == dep) & ~c["insee"].isin(covered), "insee"])
    t = result.territories
    assert not t.duplicated(["insee"]).any()
    assert set(t["insee"]) == uncovered
    assert (t["status"] == "proposition").all()
    assert t["cpts_id"].nunique() == len(result.candidates) == result.summary["n_proposed"]
    pop = dict(zip(c["insee"], c["population"].astype(float), strict=True))
    nom = dict(zip(c["insee"], c["nom"], strict=True))
    epci = dict(zip(c["insee"], c["epci"], strict=True))
    epci_uncovered: dict[str, set[str]] = {}
    for code in uncovered:
        if isinstance(epci[code], str):
            epci_uncovered.setdefault(epci[code], set()).add(code)
    links = borders()
    links = links[links["a"].isin(uncovered) & links["b"].isin(uncovered)]
    members_of = t.groupby("cpts_id")["insee"].agg(list).to_dict()
    names_of = t.groupby("cpts_id")["cpts"].agg(set).to_dict()
    for r in result.candidates.to_dict("records"):
        members = members_of[r["cpts_id"]]
        assert names_of[r["cpts_id"]] == {r["cpts"]}
        assert contiguous(members, links), r["cpts"]
        total = sum(pop[m] for m in members)
        assert r["population"] == round(total)
        assert r["n_communes"] == len(members) and r["insee"] == ", ".join(sorted(members))
        assert r["size_class"] == size_class(r["population"])
        assert pop[r["main_insee"]] == max(pop[m] for m in members)
        # named after its most populous commune, « Le »/« Les » contracted, « de » elided
        main = nom[r["main_insee"]]
        stem = main[4:] if main.startswith("Les ") else main[3:] if main.startswith("Le ") else main
        assert " — autour d" in r["cpts"] and r["cpts"].endswith(stem)
        if r["polsby_popper"] == r["polsby_popper"]:  # not NaN
            assert 0 < r["polsby_popper"] <= 1
        if r["floor"] <= r["population"] <= max_pop:
            assert r["status"] == "ok" and r["reason"].startswith("within the bounds")
        elif r["population"] < r["floor"]:
            assert r["status"] == "below_floor" and r["reason"].startswith("below the floor")
        else:
            assert r["status"] == "above_max" and r["reason"].startswith("above the ceiling")
        assert r["floor"] in (min_pop, result.summary["parameters"]["mountain_min_population"])
        # EPCI shared with another candidate, recomputed
        theirs = {epci[m] for m in members if isinstance(epci[m], str)}
        split = {e for e in theirs if not epci_uncovered[e] <= set(members)}
        assert r["epci_split"] == len(split)
        for e in split:
            assert f"({e}) (" in r["reason"]
    s = result.summary
    assert s["n_total"] == s["n_existing"] + s["n_proposed"]
    assert s["n_below_floor"] == (result.candidates["status"] == "below_floor").sum()


# ---------------------------------------------------------------------------------------------
# The Isère with the shipped territories (the "must show")
# ---------------------------------------------------------------------------------------------
def test_isere_target_20_with_the_shipped_territories():
    result, seconds = proposed("38", "shipped", 20)
    check(result, "38", shipped())
    s = result.summary
    assert s["n_existing"] == 1  # Sud-Est Grenoblois
    assert 17 <= s["n_total"] <= 23 and s["n_total"] == 20
    assert (result.candidates["status"] == "ok").all()
    assert "target 20 reached" in result.reason
    assert result.candidates["cpts_id"].tolist() == [f"proposition-38-{i:02d}"
                                                     for i in range(1, 20)]
    assert result.candidates.loc[0, "cpts"] == "Proposition 1 — autour de Grenoble"
    assert "Proposition 17 — autour de Voiron" in set(result.candidates["cpts"])
    # the metropolis (392,030 uncovered inhabitants, above the ceiling) must be split
    metro = result.candidates["epci_split_names"].str.contains("Grenoble-Alpes-Métropole")
    assert metro.any()
    assert s["epci_split"] <= 6  # of the Isère's 18 EPCI
    assert seconds < 30


def test_round_trip_through_read_territories_covers_the_departement(tmp_path):
    result, _ = proposed("38", "shipped", 20)
    path = tmp_path / "propositions_38.csv"
    result.territory_file().to_csv(path, index=False)
    back = cpts_geo.read_territories(path)
    cols = ["cpts", "cpts_id", "insee", "nom", "status", "source"]
    assert back[cols].reset_index(drop=True).equals(result.territories[cols])
    assert set(back.attrs["ignored_columns"]) == {"population_commune", "note"}
    both = cpts_geo.read_territories([SEEDS, path])
    table = cpts_geo.coverage(communes("38", False), both)
    assert table["coverage_rate"].tolist() == [1.0]
    assert table["n_cpts"].tolist() == [20] and table["n_gap_communes"].tolist() == [0]
    # and the table itself, without a file
    direct = pd.concat([shipped(), result.territories], ignore_index=True)
    assert cpts_geo.coverage(communes("38"), direct)["coverage_rate"].tolist() == [1.0]


def test_deterministic_for_a_seed_and_other_seeds_are_valid():
    result, _ = proposed("38", "shipped", 20)
    again = propose_territories(communes("38"), shipped(), departements="38", target=20)
    assert again.territories.equals(result.territories)
    assert again.candidates.equals(result.candidates)
    assert again.summary == result.summary
    other, _ = proposed("38", "shipped", 20, seed=1)
    check(other, "38", shipped())
    def groups(r):
        return set(r.candidates["insee"])
    assert groups(other) != groups(result)  # another seed, other candidates


def test_input_order_does_not_matter():
    result, _ = proposed("2A", "none", 3)
    c = communes("2A").sample(frac=1, random_state=7)
    terr = pd.DataFrame({"cpts": pd.Series([], dtype=str), "insee": pd.Series([], dtype=str)})
    shuffled = propose_territories(c, terr, departements="Corse-du-Sud", target=3)
    assert shuffled.territories.equals(result.territories)
    assert shuffled.candidates.equals(result.candidates)
    # the territories too
    t = shipped().sample(frac=1, random_state=3)
    a, _ = proposed("13", "shipped")
    b = propose_territories(communes("13"), t, departements="13")
    assert b.territories.equals(a.territories)


def test_numpy_global_random_state_is_left_alone():
    np.random.seed(123)
    state = np.random.get_state()[1].copy()
    propose_territories(communes("05"), None, departements="05", target=3, seed=5)
    assert np.array_equal(np.random.get_state()[1], state)


def test_respecting_epci_splits_fewer():
    result, _ = proposed("38", "shipped", 20)
    free, _ = proposed("38", "shipped", 20, respect=None)
    check(free, "38", shipped())
    assert result.summary["epci_split"] < free.summary["epci_split"]


# ---------------------------------------------------------------------------------------------
# Other shapes: a mountain, a city by arrondissement, an island
# ---------------------------------------------------------------------------------------------
def test_hautes_alpes_shipped_is_covered_whole():
    result, _ = proposed("05", "shipped")
    assert result.summary["n_proposed"] == 0 and len(result.territories) == 0
    assert result.summary["n_existing"] == 5 and result.summary["n_existing_straddling"] == 3
    assert "nothing to propose" in result.reason


def test_hautes_alpes_floor_limits_the_count_unless_taille_1_is_allowed():
    result, _ = proposed("05", "none", 8)
    check(result, "05")
    assert result.summary["n_proposed"] == 3 and result.summary["possible_max"] == 3
    assert "the floor (40,000) allows at most 3 candidates" in result.reason
    assert "allow taille 1 with `mountain`" in result.reason
    mountain, _ = proposed("05", "none", 8, mountain="Hautes-Alpes")
    check(mountain, "05", min_pop=10_000)
    assert mountain.summary["n_proposed"] == 8 and "target 8 reached" in mountain.reason
    small = mountain.candidates[mountain.candidates["size_class"] == 1]
    assert len(small) >= 6 and (small["floor"] == 10_000).all()
    assert small["reason"].str.contains("mountain area: taille 1 allowed").all()


def test_bouches_du_rhone_shipped_leaves_two_zones_alone():
    result, _ = proposed("13", "shipped")
    check(result, "13", shipped())
    cands = result.candidates.set_index("main_insee")
    assert set(cands.index) == {"13201", "13111"}  # Marseille 1er, Vauvenargues
    assert (cands["status"] == "below_floor").all()
    assert "bordered by CPTS" in cands.loc["13201", "reason"]
    assert "CPTS Marseille-7" in cands.loc["13201", "reason"]
    assert "kept alone" in cands.loc["13111", "reason"]
    assert result.summary["n_existing"] == 23
    assert "2 zones too small to reach the floor kept alone" in result.reason
    both = pd.concat([shipped(), result.territories], ignore_index=True)
    assert cpts_geo.coverage(communes("13"), both)["coverage_rate"].tolist() == [1.0]


def test_bouches_du_rhone_by_arrondissement():
    result, _ = proposed("13", "none")
    check(result, "13")
    assert (result.candidates["status"] == "ok").all()
    assert result.territories["insee"].isin([f"132{i:02d}" for i in range(1, 17)]).sum() == 16
    # a target above what the geography reaches is explained
    few, _ = proposed("13", "shipped", 5)
    assert "target 5 not reached: with 23 existing CPTS it leaves 0 to propose" in few.reason


def test_a_city_whole_above_the_ceiling_is_flagged():
    c = communes("13", False)
    with pytest.warns(cpts_geo.CptsGeoWarning, match="arrondissements=True"):
        result = propose_territories(c, None, departements="13")
    above = result.candidates[result.candidates["status"] == "above_max"]
    assert above["main_insee"].tolist() == ["13055"]
    assert "load the communes with arrondissements=True" in above["reason"].iloc[0]


def test_corse_du_sud():
    result, _ = proposed("2A", "none", 3)
    check(result, "2A")
    assert result.summary["n_proposed"] == 3 and "target 3 reached" in result.reason
    unreachable, _ = proposed("2A", "none", 10)
    assert "at most 3 candidates" in unreachable.reason


# ---------------------------------------------------------------------------------------------
# Zones too small, communes the bundle does not draw
# ---------------------------------------------------------------------------------------------
def test_an_enclave_is_kept_alone_and_says_so():
    """Cover every neighbour of Mens (38226) with one CPTS: Mens is an enclave, below the floor."""
    mens = "38226"
    ring = cpts_geo.ContiguityGraph(cpts_geo.load_contiguity()).neighbours(mens)
    t = pd.DataFrame({"cpts": "Trièves", "insee": ring})
    result = propose_territories(communes("38"), t, departements="38", target=20)
    check(result, "38", t)
    alone = result.candidates[result.candidates["status"] == "below_floor"]
    assert alone["insee"].tolist() == [mens]
    assert "an enclave in CPTS Trièves" in alone["reason"].iloc[0]
    assert result.summary["n_total"] == 20  # 1 existing + the enclave + 18


def test_a_lowland_commune_amid_mountains_is_attached():
    """The Isère as a mountain area but Mens: Mens (a zone on its own, below the floor) joins the
    mountain candidate it shares the longest border with."""
    c = communes("38")
    mountain = [x for x in c["insee"] if x != "38226"]
    result = propose_territories(c, None, departements="38", mountain=mountain, target=40)
    check(result, "38", min_pop=MIN)
    row = result.candidates[result.candidates["insee"].str.contains("38226")].iloc[0]
    assert "with 1 commune attached (Mens" in row["reason"]
    assert result.summary["n_attached"] == 1


def test_communes_the_bundle_does_not_draw_go_with_the_one_covering_them():
    result, _ = proposed("15", "none")
    check(result, "15")
    row = result.candidates[result.candidates["insee"].str.contains("15141")].iloc[0]
    assert {"15031", "15035", "15047", "15171"} <= set(row["insee"].split(", "))
    assert "which the bundled boundaries do not draw: they lie inside Neussargues-Moissac" in (
        row["reason"])
    assert len(result.candidates) == 2
    # Neussargues-Moissac covered: the four are one candidate, kept alone, with the reason
    t = pd.DataFrame({"cpts": "Hautes Terres", "insee": ["15141"]})
    covered = propose_territories(communes("15"), t, departements="15")
    check(covered, "15", t)
    lone = covered.candidates[covered.candidates["insee"].str.contains("15031")].iloc[0]
    assert lone["insee"] == "15031, 15035, 15047, 15171" and lone["status"] == "below_floor"
    assert "inside Neussargues-Moissac (15141), which CPTS Hautes Terres covers" in (
        lone["reason"])


# ---------------------------------------------------------------------------------------------
# Propositions already in the file, partly covered communes, bad input
# ---------------------------------------------------------------------------------------------
def test_numbering_continues_after_the_propositions_already_there(tmp_path):
    first, _ = proposed("38", "shipped", 20)
    kept = first.territories[first.territories["cpts_id"].isin(
        ["proposition-38-01", "proposition-38-02"])]
    existing = pd.concat([shipped(), kept], ignore_index=True)
    second = propose_territories(communes("38"), existing, departements="38", target=20)
    assert second.summary["n_existing"] == 3
    assert second.candidates["cpts_id"].iloc[0] == "proposition-38-03"
    file1, file2 = tmp_path / "first.csv", tmp_path / "second.csv"
    table = first.territory_file()
    table[table["cpts_id"].isin(kept["cpts_id"])].to_csv(file1, index=False)
    second.territory_file().to_csv(file2, index=False)
    every = cpts_geo.read_territories([SEEDS, file1, file2])  # no id in two files
    assert cpts_geo.coverage(communes("38"), every)["coverage_rate"].tolist() == [1.0]


def test_partly_covered_communes_are_left_and_reported():
    t = pd.DataFrame({"cpts": ["A", "A"], "insee": ["38185", "38151"], "share": [0.5, 1.0]})
    with pytest.warns(cpts_geo.CptsGeoWarning, match="only partly covered"):
        result = propose_territories(communes("38"), t, departements="38")
    assert result.summary["n_partly_covered"] == 1
    assert "38185" not in set(result.territories["insee"])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"departements": None}, "`departements` is required"),
    ({"target": 0}, "`target` was 0"),
    ({"target": 2.5}, "`target` was 2.5"),
    ({"min_population": 200_000}, "must be below `max_population`"),
    ({"respect": "commune"}, "'epci' or None"),
    ({"seed": -1}, "`seed` was -1"),
    ({"mountain": "38999"}, "a commune that is not in the département"),
    ({"mountain_min_population": 50_000}, "must not exceed `min_population`"),
])
def test_bad_input_is_refused_with_a_message(kwargs, message):
    kw = {"departements": "05", **kwargs}
    with pytest.raises(InputError, match=message):
        propose_territories(communes("05"), None, **kw)


def test_epci_needed_to_follow_them():
    c = communes("05").drop(columns="epci")
    with pytest.raises(InputError, match="no column 'epci'"):
        propose_territories(c, None, departements="05")
    result = propose_territories(c, None, departements="05", respect=None)
    assert result.summary["n_proposed"] == 2


@pytest.mark.slow
def test_isere_unreachable_target_is_explained():
    result, seconds = proposed("38", "shipped", 45)
    check(result, "38", shipped())
    assert result.summary["possible_max"] == 28  # (1,240,412 - Grenoble) // 40,000 + 1
    assert "the floor (40,000) allows at most 28 candidates" in result.reason
    assert result.summary["n_proposed"] >= 24
    assert seconds < 30


def test_without_proposals_drops_only_the_propositions():
    from cpts_geo.analysis.inputs import prepare
    from cpts_geo.analysis.proposals import without_proposals

    result, _ = proposed("38", "shipped", 20)
    seeds = cpts_geo.read_territories(SEEDS)
    p = prepare(communes("38"), pd.concat([seeds, result.territories], ignore_index=True))
    real = without_proposals(p)
    assert set(real.membership["cpts"]) == {"Sud-Est Grenoblois", "Vallée du Gier",
                                            "Vénissieux"}
    assert real.per_commune["covered"].sum() == 5 and p.per_commune["covered"].all()
    plain = prepare(communes("38"), seeds)
    assert without_proposals(plain) is plain
