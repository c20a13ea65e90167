"""The ACI rules file: every amount sourced, the size classes and the convention at their bounds,
the version that applies at a date."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import pytest

from cpts_geo import SIZE_CLASSES, size_class
from cpts_geo.analysis.aci import (
    default_rules,
    parse_rules,
    size_class_basis,
    size_classes,
)
from cpts_geo.errors import InputError
from cpts_geo.io.rules import read_aci_rules

RULES = Path(__file__).resolve().parents[2] / "cpts_geo" / "data" / "aci_rules.json"


@pytest.fixture()
def raw():
    return copy.deepcopy(read_aci_rules())


def test_the_rules_file_is_shipped_as_package_data():
    import tomllib

    pyproject = tomllib.loads((RULES.parents[2] / "pyproject.toml").read_text("utf-8"))
    assert "*.json" in pyproject["tool"]["setuptools"]["package-data"]["cpts_geo.data"]
    assert json.loads(RULES.read_text("utf-8"))["schema_version"] == 1


def test_every_amount_names_its_source_quote_and_basis():
    rules = default_rules()
    assert [v.id for v in rules.versions] == ["aci-2019", "aci-avenant-2"]
    n = 0
    for v in rules.versions:
        for a in v.amounts:
            n += 1
            src = rules.sources[a.source]
            assert src["title"] and "date" in src and src["url"].startswith("http")
            assert a.basis in ("published", "derived") and len(a.quote) > 40
            # the amount is printed in its quote (as French text: "287 000" or "287 000 €")
            printed = f"{int(a.amount_eur):,}".replace(",", " ")
            assert printed in a.quote.replace("\u202f", " ").replace("\xa0", " "), (v.id, a)
    assert n == 19


def test_published_amounts_of_the_2019_agreement():
    v = default_rules().versions[0]
    caps = [v.amount("max_annual_total", t).amount_eur for t in (1, 2, 3, 4)]
    assert caps == [220_000, 287_000, 370_000, 450_000]
    assert [v.amount("fonctionnement", t).amount_eur for t in (1, 2, 3, 4)] == [
        50_000, 60_000, 75_000, 90_000]
    assert {a.basis for a in v.amounts} == {"published"}
    assert v.applies_from == pd.Timestamp("2019-08-25") and v.signed == pd.Timestamp("2019-06-20")


def test_avenant_2_gives_only_what_sources_establish():
    v = default_rules().versions[1]
    assert v.signed == pd.Timestamp("2021-12-20")
    assert v.applies_from == pd.Timestamp("2022-03-31") and v.applies_from_basis == "convention"
    assert v.amount("max_annual_total", 4).amount_eur == 580_000
    assert v.amount("max_annual_total", 4).basis == "published"
    for item in ("max_annual_total", "fonctionnement", "mission_acces_aux_soins"):
        for taille in (2, 3):  # only the ends of the published ranges: tailles 2 and 3 absent
            assert v.amount(item, taille) is None
    # the ends of a published range read as tailles 1 and 4: our reading, marked derived
    low, high = v.amount("mission_acces_aux_soins", 1), v.amount("mission_acces_aux_soins", 4)
    assert (low.amount_eur, high.amount_eur) == (80_000, 155_000)
    assert low.basis == high.basis == "derived" and "taille 1" in low.note
    # the letter-of-intent advance was negotiated, never established: absent everywhere
    assert not [a for ver in default_rules().versions for a in ver.amounts
                if a.item == "avance_lettre_intention"]


def test_disagreements_and_gaps_are_stated():
    data = read_aci_rules()
    topics = " ".join(d["topic"] for d in data["disagreements"])
    assert "letter-of-intent" in topics and "JO date" in topics
    assert any("80 000" in s for s in data["not_established"])
    assert data["versions_not_established"][0]["id"] == "aci-avenant-1"
    bounds = data["conventions"]["size_class_bounds"]
    assert {k: (b["taille"], b["basis"]) for k, b in bounds.items()} == {
        "40000": (2, "derived"), "80000": (2, "convention"), "175000": (3, "derived")}


def test_class_boundaries():
    cases = {0: 1, 39_999: 1, 39_999.9: 1, 40_000: 2, 40_000.1: 2, 79_999.9: 2, 80_000: 2,
             80_000.1: 3, 174_999.9: 3, 175_000: 3, 175_000.1: 4, 2_000_000: 4}
    assert {p: size_class(p) for p in cases} == cases
    assert size_classes(pd.Series(list(cases))).tolist() == list(cases.values())
    assert size_class(None) is None and size_class(-1) is None and size_class(float("nan")) is None
    # the placement at each bound says how it was made; away from a bound, nothing
    assert size_class_basis(40_000).startswith("derived: taille 1 is « moins de 40 000")
    assert size_class_basis(80_000).startswith("convention: NOT established")
    assert size_class_basis(175_000).startswith("derived: taille 4 is « plus de 175 000")
    assert size_class_basis(80_000.1) == "" and size_class_basis(None) == ""


def test_size_classes_come_from_the_rules_file():
    latest = default_rules().latest.size_classes
    assert SIZE_CLASSES == latest
    assert [(c.taille, c.low, c.high, c.high_inclusive) for c in SIZE_CLASSES] == [
        (1, 0, 40_000, False), (2, 40_000, 80_000, True), (3, 80_000, 175_000, True),
        (4, 175_000, float("inf"), False)]
    assert all(v.size_classes == latest for v in default_rules().versions)


def test_version_at_a_status_date():
    rules = default_rules()
    assert rules.version_at(pd.Timestamp("2019-09-25"))[0].id == "aci-2019"
    assert rules.version_at(pd.Timestamp("2023-12-07"))[0].id == "aci-avenant-2"
    v, why = rules.version_at(pd.Timestamp("2022-01-15"))  # signed, not yet published
    assert v.id == "aci-2019" and "entry into force is not established" in why
    v, why = rules.version_at(pd.Timestamp("2019-05-01"))
    assert v is None and "before the first version" in why
    v, why = rules.version_at(None)
    assert v.id == "aci-avenant-2" and why == "no status date: the latest version"


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["versions"][0]["amounts"][0].update(basis="estimated"),
     "'basis' 'estimated' is not one of"),
    (lambda d: d["versions"][0]["amounts"][0].update(quote=""), "'quote' is missing"),
    (lambda d: d["versions"][0]["amounts"][0].update(taille=7), "'taille' 7 is not a size class"),
    (lambda d: d["versions"][0]["amounts"][0].update(item="bonus"), "'item' 'bonus' is not one"),
    (lambda d: d["versions"][0]["amounts"].append(d["versions"][0]["amounts"][0]),
     "given twice for taille 1"),
    (lambda d: d["versions"][1]["size_classes"][2].update(min=90_000), "leave no gap"),
    (lambda d: d["versions"][1]["size_classes"][1].update(max_inclusive=None),
     "state the convention"),
    (lambda d: d["versions"][1].update(applies_from="31/02/2022"), "not a valid date"),
    (lambda d: d["sources"]["qdm-2022-jo"].pop("url"), "needs a 'title', a 'date' and a 'url'"),
    (lambda d: d["conventions"]["size_class_bounds"]["80000"].update(taille=3),
     "says taille 3 but the classes"),
])
def test_a_damaged_rules_file_is_refused_naming_the_problem(raw, change, message):
    change(raw)
    with pytest.raises(InputError, match=message):
        parse_rules(raw, name="regles.json")


def test_a_foreign_file_is_not_rules():
    with pytest.raises(InputError, match="not a cpts_geo ACI rules file"):
        parse_rules({"versions": []})
