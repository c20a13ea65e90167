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
