"""Inputs prepared once: figures named after an area or a CPTS cover it whole."""

from __future__ import annotations

import pandas as pd
import pytest

import cpts_geo
from cpts_geo.analysis.inputs import prepare
from cpts_geo.errors import CptsGeoWarning, InputError

SEG = pd.DataFrame({"cpts": "SEG", "insee": ["38421", "38309", "38158"]})


@pytest.mark.slow
def test_region_figures_cover_the_whole_region(loire_rhone):
    # the issue: on the communes of two départements, by="region" printed their share under the
    # région's name (7.4 % where the région is at 1.9 %)
    t = pd.DataFrame({"cpts": "Gier", "insee": ["42207", "42110"]})
    with pytest.warns(CptsGeoWarning, match=r"cover whole régions: `communes` lacked \d+ commune"):
        table = cpts_geo.coverage(loire_rhone, t, by="region")
    ara = cpts_geo.load_communes(regions="84")
    row = table.set_index("region").loc["84"]
    assert row["nom"] == "Auvergne-Rhône-Alpes"
    assert row["population"] == ara["population"].sum()
    assert row["n_communes"] == len(ara)
    by_dep = cpts_geo.coverage(ara, t).set_index("departement")
    assert row["covered_population"] == by_dep["covered_population"].sum()


@pytest.mark.slow
def test_national_figures_cover_france(isere):
    with pytest.warns(CptsGeoWarning, match="national figures cover all of France"):
        row = cpts_geo.coverage(isere, SEG, by="nation").iloc[0]
    assert row["n_communes"] == 34_875 and row["nom"] == "France"


def test_a_partial_departement_is_completed(isere):
    with pytest.warns(CptsGeoWarning, match=r"whole départements: `communes` lacked 500"):
        row = cpts_geo.coverage(isere.iloc[:12], SEG).iloc[0]
    assert row["n_communes"] == 512


def test_communes_of_unknown_origin_are_refused_not_guessed(isere):
    partial = isere.iloc[:12].copy()
    partial.attrs = {}
    with pytest.raises(InputError, match="does not say where it comes from"):
        cpts_geo.coverage(partial, SEG)


def test_prepare_once_gives_every_figure(isere):
    p = prepare(isere, SEG)
    assert p.per_commune["covered"].sum() == 3
    assert p.memo("x", lambda q: len(q.codes)) == 512
    assert p.memo("x", lambda q: -1) == 512  # computed once
    assert p.attrs["population_year"] == 2026 and "caveats" not in p.attrs


def test_filters_are_parsed_once_with_the_one_date_parser(isere):
    t = SEG.assign(status="ACI signé", status_date="09/07/2020")
    p = prepare(isere, t, as_of="9 juillet 2020", statuses="aci")
    assert p.as_of == pd.Timestamp("2020-07-09") and p.statuses == ("ACI signé",)
    assert len(p.membership) == 3
    assert len(prepare(isere, t, as_of="08/07/2020").membership) == 0
