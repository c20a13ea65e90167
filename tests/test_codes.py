"""INSEE codes and names: spreadsheet-mangled codes, former communes, published name lists."""

from __future__ import annotations

import warnings

import pytest
from helpers import VALLEE_DU_GIER

import cpts_geo
from cpts_geo.codes import match_name, name_key, normalize_insee, resolve_codes, resolve_communes
from cpts_geo.errors import (
    AmbiguousCommuneError,
    CptsGeoWarning,
    InvalidInseeCodeError,
    UnknownCommuneError,
)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (1001, "01001"),
        ("1001", "01001"),
        (1001.0, "01001"),
        ("1001.0", "01001"),
        ("01001", "01001"),
        (" 42218 ", "42218"),
        ("42 218", "42218"),
        ("42\u00a0218", "42218"),
        ("2a004", "2A004"),
        ("2B033", "2B033"),
        (42218, "42218"),
    ],
)
def test_normalize_insee_accepts_what_spreadsheets_produce(raw, code):
    assert normalize_insee(raw) == code


@pytest.mark.parametrize("raw", ["", None, float("nan"), "123", "421234", "4221A", "2C004",
                                 1001.5, "Saint-Étienne", True, "1e3"])
def test_normalize_insee_rejects_the_rest(raw):
    with pytest.raises(InvalidInseeCodeError, match="INSEE"):
        normalize_insee(raw)


def test_resolve_codes_keeps_current_codes_and_arrondissements():
    assert resolve_codes(["42218", 1001, "69383", "2a004"]) == ["42218", "01001", "69383",
                                                                "2A004"]


def test_code_kept_by_a_commune_nouvelle_is_the_commune_nouvelle_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_codes(["69149"]) == ["69149"]  # Oullins-Pierre-Bénite


def test_code_of_a_commune_deleguee_resolves_with_a_warning():
    with pytest.warns(CptsGeoWarning, match=r"69101 \(Jarnioux, commune déléguée\) -> 69114"):
        assert resolve_codes(["69101"]) == ["69114"]


def test_unknown_and_obsolete_codes_are_all_listed():
    with pytest.raises(UnknownCommuneError, match=r"2 unknown INSEE code\(s\).*42999.*2A999"):
        resolve_codes(["42218", "42999", "2A999"])
    with pytest.raises(UnknownCommuneError, match="pre-1976 Corsican"):
        resolve_codes(["20999"])


def test_pre_1976_corsican_code_resolves_with_a_warning():
    with pytest.warns(CptsGeoWarning, match=r"20004 .* -> 2A004"):
        assert resolve_codes(["20004"]) == ["2A004"]


def test_name_key():
    assert name_key("L’Horme") == name_key("l'horme") == name_key("HORME") == "horme"
    assert name_key("St-Chamond") == name_key("Saint Chamond") == "saint chamond"
    assert name_key("Ste-Croix-en-Jarez") == name_key("Sainte-Croix-en-Jarez")
    assert name_key("Les Salles", keep_article=True) == "les salles"
    assert name_key("Œuilly") == "oeuilly"
    assert name_key("Horme (L')") == name_key("L'Horme")
    assert name_key("Salles (Les)", keep_article=True) == "les salles"


def test_insee_style_trailing_articles_resolve():
    assert resolve_communes(["Horme (L')", "Grand-Croix (La)", "Bessat (Le)"],
                            departements="42") == ["42110", "42103", "42017"]


def test_vallee_du_gier_names_resolve_in_order(loire_rhone):
    codes = resolve_communes(VALLEE_DU_GIER, departements=["42", "69"])
    assert len(codes) == 27 == len(set(codes))
    ref = loire_rhone.set_index("insee")
    # every code's official name is the published one (up to the typographic apostrophe)
    for name, code in zip(VALLEE_DU_GIER, codes, strict=True):
        assert ref.loc[code, "nom"] == name.replace("’", "'")
    deps = [ref.loc[c, "departement"] for c in codes]
    assert deps.count("42") == 25
    assert dict(zip(VALLEE_DU_GIER, codes, strict=True))["Longes"] == "69119"
    assert dict(zip(VALLEE_DU_GIER, codes, strict=True))["Trèves"] == "69252"


def test_published_spellings_variants():
    assert resolve_communes(["st chamond", "LA GRAND CROIX", "l'horme", "Grand-Croix"],
                            departements="42") == ["42207", "42103", "42110", "42103"]
    assert resolve_communes(["Lyon 3e", "Paris 12", "Marseille 1er arrondissement"]) == [
        "69383", "75112", "13201"]


def test_ambiguous_name_without_departement_lists_candidates():
    with pytest.raises(AmbiguousCommuneError, match=r"Saint-Joseph.*42242.*50498"):
        resolve_communes(["Saint-Joseph"])
    assert resolve_communes(["Saint-Joseph"], departements=42) == ["42242"]


def test_unknown_name_lists_each_offender_with_closest_candidates():
    with pytest.raises(UnknownCommuneError) as info:
        resolve_communes(["Saint-Chamon", "Lorette", "Rive de Giers"], departements="42")
    msg = str(info.value)
    assert "'Saint-Chamon' is not a commune name in département(s) 42" in msg
    assert "Saint-Chamond (42207, 42)" in msg
    assert "'Rive de Giers'" in msg and "Rive-de-Gier (42186, 42)" in msg
    assert "Lorette" not in msg.split("resolved:")[1].split("'")[0]


def test_close_matches_only_on_opt_in_with_a_warning():
    with pytest.warns(CptsGeoWarning, match="approximately to Saint-Chamond"):
        assert resolve_communes(["Saint-Chamon"], departements="42", fuzzy=True) == ["42207"]


def test_former_name_of_merged_commune_resolves_with_a_warning():
    with pytest.warns(CptsGeoWarning, match=r"former name.*Oullins-Pierre-Bénite \(69149\)"):
        assert resolve_communes(["Oullins"], departements="69") == ["69149"]
    with pytest.warns(CptsGeoWarning, match="Porte des Pierres Dorées"):
        assert resolve_communes(["Liergues"], departements="69") == ["69114"]


def test_match_name_never_raises():
    assert match_name("", None).status == "unknown"
    assert match_name("Châteauneuf", None).status == "ambiguous"
    assert match_name("Châteauneuf", {"42"}).code == "42053"


def test_public_api_exports():
    for name in ("load_communes", "resolve_communes", "normalize_insee", "coverage",
                 "find_gaps", "find_overlaps", "territory_geometries", "read_territories"):
        assert hasattr(cpts_geo, name), name


# ---------------------------------------------------------------------------------------------
# Names as planners type them (issue 12)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "scope", "code"), [
    ("5ème arrondissement de Lyon", None, "69385"),
    ("Lyon 5e", None, "69385"),
    ("Lyon 5ème", None, "69385"),
    ("Lyon 5eme arrondissement", None, "69385"),
    ("Marseille 1er", None, "13201"),
    ("1er arrondissement de Marseille", None, "13201"),
    ("Paris 16e", None, "75116"),
    ("Paris 16ème arr.", None, "75116"),
    ("3ᵉ arrondissement", {"69"}, "69383"),  # in a Rhône file
    ("3e arrondissement", {"13"}, "13203"),
    ("arrondissement 12", {"75"}, "75112"),
])
def test_arrondissements_as_people_write_them(name, scope, code):
    m = match_name(name, scope)
    assert (m.status, m.code) == ("exact", code)


def test_an_arrondissement_without_its_city_lists_each_city_once():
    m = match_name("3ᵉ arrondissement")
    assert m.status == "ambiguous"
    assert m.codes == ("13203", "69383", "75103")
    assert "give the INSEE code or the city" in m.message
    # closest-name suggestions list each commune once, not once per spelling of it
    m = match_name("Lyon 3eme arondisement")
    assert m.status == "unknown" and len(set(m.candidates)) == len(m.candidates) == 3
    assert m.candidates[0] == "Lyon 3e Arrondissement (69383, 69)"


@pytest.mark.parametrize(("name", "code"), [
    ("Châteauneuf (42)", "42053"), ("Châteauneuf (Loire)", "42053"),
    ("Trèves (Rhône)", "69252"), ("Trèves (69)", "69252"), ("Saint-Joseph (042)", "42242"),
    ("Saint-Martin-d'Hères (38400)", "38421"), ("Horme (L')", "42110"),
    ("Château-Chinon (Ville)", "58062"),  # an official name with parentheses
])
def test_a_departement_or_postal_code_in_parentheses_disambiguates(name, code):
    assert match_name(name).code == code


def test_a_qualifier_that_is_no_departement_is_part_of_the_name():
    m = match_name("Saint-Joseph (Bretagne)")
    assert m.status == "unknown" and "'Saint-Joseph (Bretagne)' is not a commune name" in m.message


def test_postal_codes_of_the_bundle():
    from cpts_geo.codes import postal_code_communes, postal_codes_of

    assert postal_code_communes("38400") == ("38421",)  # Saint-Martin-d'Hères
    assert postal_codes_of("38400") == ("38430",)  # Saint-Jean-de-Moirans, INSEE 38400
    assert postal_code_communes(1000) == ("01053", "01344")
    assert set(postal_code_communes("75016")) == {"75056", "75116"}
    assert postal_code_communes("99999") == ()


def test_postal_codes_match_the_raw_npm_package(raw_npm):
    """Recomputed from the tarball's communes.json, independently of the build script."""
    import pyarrow.parquet as pq

    from cpts_geo._data import bundle_path

    raw = raw_npm("6.0.0")
    expected = {(cp, c["code"]) for c in raw
                if c["type"] in ("commune-actuelle", "arrondissement-municipal")
                and not c["code"].startswith(("975", "977", "978", "98"))
                for cp in c.get("codesPostaux", [])}
    table = pq.read_table(bundle_path("postal_codes.parquet")).to_pylist()
    bundled = {(r["code_postal"], r["insee"]) for r in table}
    assert bundled == expected
    assert len(table) == len(bundled) == 35405
    assert ("38400", "38421") in bundled and ("38430", "38400") in bundled


def test_thousands_of_misspelt_names_fail_fast_with_suggestions_for_the_first_20():
    import time

    names = [f"Zorglub-sur-Loire {i}" for i in range(3000)] + ["Saint-Chamon"]
    start = time.perf_counter()
    with pytest.raises(UnknownCommuneError) as info:
        resolve_communes(names)
    elapsed = time.perf_counter() - start
    message = str(info.value)
    assert message.startswith("3001 name(s) could not be resolved")
    assert "closest names are searched for the first 20 unknown names only" in message
    assert "'Saint-Chamon' is not a commune name" in message  # listed, without suggestions
    assert elapsed < 5, elapsed
