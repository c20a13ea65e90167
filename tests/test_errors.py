"""Warnings are raised once each and point at the caller's line."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

import cpts_geo
from cpts_geo.errors import CptsGeoWarning, Problem, TerritoryError, public, warn

# Saint-Martin-d'Hères in two CPTS with shares adding up to 1.5: a warning from the validator
OVERLAP = pd.DataFrame({"cpts": ["A", "B"], "insee": ["38421", "38421"], "share": [1.0, 0.5]})


def test_find_overlaps_warns_once_at_the_callers_line(isere):
    with pytest.warns(CptsGeoWarning, match="shares adding up to more than 1") as record:
        cpts_geo.find_overlaps(isere, OVERLAP)
    assert len(record) == 1
    assert record[0].filename == __file__


def test_territory_geometries_warns_once_at_the_callers_line(isere):
    with pytest.warns(CptsGeoWarning) as record:
        cpts_geo.territory_geometries(isere, OVERLAP)
    assert len(record) == 1
    assert record[0].filename == __file__


def test_nested_public_calls_emit_once():
    @public
    def inner() -> int:
        warn("from inner")
        return 1

    @public
    def outer() -> int:
        return inner() + inner()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert outer() == 2
    assert [str(w.message) for w in caught] == ["from inner"]
    assert caught[0].filename == __file__


def test_warnings_before_an_error_are_still_emitted():
    @public
    def failing() -> None:
        warn("first")
        raise ValueError("then this")

    with pytest.warns(CptsGeoWarning, match="first"), pytest.raises(ValueError):
        failing()


def test_a_warning_can_be_made_an_error_by_the_caller(isere):
    with warnings.catch_warnings():
        warnings.simplefilter("error", CptsGeoWarning)
        with pytest.raises(CptsGeoWarning):
            cpts_geo.find_overlaps(isere, OVERLAP)


def test_territory_error_lists_the_first_problems_and_keeps_all():
    problems = [Problem("f.csv", i, "insee", i, "bad") for i in range(2, 30)]
    err = TerritoryError(problems)
    lines = str(err).splitlines()
    assert lines[0] == "28 problems in f.csv: correct these cells in the file and read it again"
    assert lines[1] == "f.csv, row 2, column 'insee': bad (value: 2)"
    assert len(lines) == 22 and lines[-1].startswith("… and 8 more problems")
    assert len(err.problems) == 28 and err.headline == lines[0]


def test_the_same_mistake_on_every_row_is_one_line():
    problems = [Problem("f.csv", i, "statut", "en cours", "'en cours' is not a CPTS status")
                for i in [*range(2, 251), 260]]
    problems.append(Problem("f.csv", 7, "insee", "42999", "unknown INSEE code 42999"))
    err = TerritoryError(problems)
    assert str(err).splitlines() == [
        "251 problems in f.csv: correct these cells in the file and read it again",
        "f.csv, rows 2-250, 260, column 'statut': 'en cours' is not a CPTS status "
        "(value: 'en cours')",
        "f.csv, row 7, column 'insee': unknown INSEE code 42999 (value: '42999')",
    ]
    assert len(err.problems) == 251
