"""The membership table: one date parser, the validator of tables in memory, member checks."""

from __future__ import annotations

import datetime as dt
import warnings

import pandas as pd
import pytest

from cpts_geo.errors import CptsGeoWarning, InputError, TerritoryError
from cpts_geo.membership import COLUMNS, STATUSES, as_membership, parse_date, parse_share, slug


@pytest.mark.parametrize(("value", "expected"), [
    ("2020-07-09", "2020-07-09"), ("2020/07/09", "2020-07-09"), ("2020-07-09 14:30", "2020-07-09"),
    ("09/07/2020", "2020-07-09"), ("9.7.2020", "2020-07-09"), ("07/12/2020", "2020-12-07"),
    ("9 juillet 2020", "2020-07-09"), ("1er décembre 2023", "2023-12-01"),
    ("juillet 2020", "2020-07-01"), ("9 JUILLET 2020", "2020-07-09"),
    (dt.date(2019, 9, 25), "2019-09-25"), (pd.Timestamp("2019-09-25 10:00", tz="UTC"),
                                           "2019-09-25"),
    (44000, "2020-06-18"),  # an Excel serial
])
def test_one_date_parser_for_every_form(value, expected):
    assert parse_date(value).date().isoformat() == expected


@pytest.mark.parametrize(("value", "reason"), [
    ("0202-01-01", "outside 2000-2099"), ("31/02/2021", "no such day"), ("hier", "is not a date"),
    (float("inf"), "is not a date"), (12, "is not a date"), ("2150-01-01", "outside"),
])
def test_bad_dates_are_refused_with_the_reason(value, reason):
    with pytest.raises(InputError, match=reason):
        parse_date(value, what="`as_of`")


def test_empty_date_is_none():
    assert parse_date("") is None and parse_date(None) is None


def test_shares_and_slugs():
    assert parse_share("50 %") == (0.5, True)
    assert parse_share(None) == (1.0, False)
    with pytest.raises(ValueError, match="write a percentage with its sign"):
        parse_share(50)
    assert slug("Vallée du Gier") == "vallee-du-gier"
    assert STATUSES[0] == "proposition" and STATUSES[-1] == "ACI signé"


def test_a_typed_table_takes_the_fast_path_and_gets_every_column():
    t = pd.DataFrame({"cpts": ["A", "A"], "cpts_id": ["a", "a"], "insee": ["42218", "42207"],
                      "share": [1.0, 0.5]})
    m = as_membership(t)
    assert list(m.columns) == list(COLUMNS)
    assert m["nom"].tolist() == ["Saint-Étienne", "Saint-Chamond"]
    assert m["row"].tolist() == [2, 3] and m["status"].isna().all()
    assert m is not t and list(t.columns) == ["cpts", "cpts_id", "insee", "share"]


def test_a_raw_table_is_validated_like_a_file():
    t = pd.DataFrame({"CPTS": ["A", "A"], "Code INSEE": [42218, "1001"],
                      "Statut": ["aci", None], "Date": ["9 juillet 2020", None]})
    m = as_membership(t)
    assert m["insee"].tolist() == ["42218", "01001"]
    assert set(m["status"]) == {"ACI signé"}
    assert set(m["status_date"]) == {pd.Timestamp("2020-07-09")}


def test_an_empty_table_is_an_empty_membership():
    m = as_membership(pd.DataFrame({"cpts": [], "insee": []}))
    assert list(m.columns) == list(COLUMNS) and len(m) == 0


def test_a_city_and_its_own_arrondissement_in_one_cpts_is_refused():
    # Lyon (519,127) and Lyon 3e in one CPTS would count the 3e twice (issue 14, 619,806)
    t = pd.DataFrame({"cpts": ["A", "A"], "commune": ["Lyon", "Lyon 3e"]})
    with pytest.raises(TerritoryError, match=r"row 3.*lists both the city 69123 .*row 2.*69383"):
        as_membership(t)
    # in two CPTS it is an overlap, accepted
    t = pd.DataFrame({"cpts": ["A", "B"], "commune": ["Lyon", "Lyon 3e"]})
    assert len(as_membership(t)) == 2


def test_two_former_communes_of_one_commune_nouvelle_are_counted_once_with_a_warning():
    # Saint-Pierre-sur-Dives and Vieux-Pont-en-Auge are both communes déléguées of
    # Saint-Pierre-en-Auge (14654)
    t = pd.DataFrame({"cpts": ["A", "A"],
                      "commune": ["Saint-Pierre-sur-Dives", "Vieux-Pont-en-Auge"],
                      "departement": ["14", "14"]})
    with pytest.warns(CptsGeoWarning, match=r"both 14654 Saint-Pierre-en-Auge"):
        m = as_membership(t)
    assert m["insee"].tolist() == ["14654"]
    # the same name twice stays a duplicate
    t = pd.DataFrame({"cpts": ["A", "A"], "commune": ["Saint-Pierre-sur-Dives"] * 2,
                      "departement": ["14", "14"]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CptsGeoWarning)
        with pytest.raises(TerritoryError, match="duplicate"):
            as_membership(t)


def test_not_a_table():
    with pytest.raises(InputError, match="`territories` was a list"):
        as_membership([1, 2])  # type: ignore[arg-type]
