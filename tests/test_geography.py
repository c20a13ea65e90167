"""Départements, régions and the municipal arrondissements, read as users write them."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from cpts_geo import geography
from cpts_geo._data import bundle_path
from cpts_geo.errors import InputError
from cpts_geo.geography import normalize_departement, normalize_departements, normalize_regions


@pytest.mark.parametrize(("raw", "code"), [
    (1, "01"), ("1", "01"), ("1.0", "01"), (1.0, "01"), ("01", "01"), ("001", "01"),
    ("042", "42"), ("42", "42"), (" 42 ", "42"), ("2a", "2A"), ("2B", "2B"), ("974", "974"),
    ("Loire", "42"), ("loire", "42"), ("Isère", "38"), ("isere", "38"),
    ("Côtes-d'Armor", "22"), ("cotes d armor", "22"), ("Territoire de Belfort", "90"),
    ("La Réunion", "974"),
])
def test_departements_as_users_write_them(raw, code):
    assert normalize_departement(raw) == code


@pytest.mark.parametrize(("raw", "hint"), [
    ("20", "Corsica is split"), ("975", "Overseas collectivities"), ("42,43", "pass a list"),
    ("99", "is not a département"), (True, "is not a code"), (None, "is not a code"),
])
def test_unknown_departements_are_refused_with_a_hint(raw, hint):
    with pytest.raises(InputError, match=hint):
        normalize_departement(raw)


def test_a_string_is_one_departement_never_its_characters():
    # publish(..., departements="42") once iterated the string and published 02 and 04
    assert normalize_departements("42") == ["42"]
    assert normalize_departements(42) == ["42"]
    assert normalize_departements(("42", "Rhône", "42")) == ["42", "69"]
    assert normalize_departements(None) is None
    with pytest.raises(InputError, match="empty list"):
        normalize_departements([])


def test_regions():
    assert normalize_regions("84") == ["84"]
    assert normalize_regions(["Corse", "PACA", "Provence-Alpes-Côte d'Azur", 93]) == ["94", "93"]
    with pytest.raises(InputError, match="région 'Champagne' is not a région"):
        normalize_regions("Champagne")


def test_tables_agree_with_the_bundle_files():
    deps = pq.read_table(bundle_path("departements.parquet")).to_pandas()
    assert {d: (n, r) for d, n, r in zip(deps["departement"], deps["nom"], deps["region"],
                                         strict=True)} == {
        d.code: (d.nom, d.region) for d in geography.departements().values()}
    com = pq.read_table(bundle_path("communes.parquet"),
                        columns=["insee", "kind", "parent", "departement"]).to_pandas()
    counts = com[com["kind"] == "commune"].groupby("departement").size()
    assert {d: d_.n_communes for d, d_ in geography.departements().items()} == counts.to_dict()
    arms = com[com["kind"] == "arrondissement"].groupby("parent")["insee"].agg(sorted)
    assert {k: list(v) for k, v in geography.arrondissements().items()} == arms.to_dict()
    assert geography.departements()["13"].n_units_arrondissements == 119 - 1 + 16
    assert len(geography.regions()) == 18


def test_local_projections():
    assert geography.local_crs("42") == 2154
    assert geography.local_crs("973") == 2972
    assert geography.departement_of("97411") == "974"
