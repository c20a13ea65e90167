"""Reading an ACI rules file: the shipped one, a planner's copy, and what is not one."""

from __future__ import annotations

import json

import pytest

from cpts_geo.errors import InputError
from cpts_geo.io.rules import read_aci_rules


def test_the_shipped_file_is_read_afresh_each_time():
    a, b = read_aci_rules(), read_aci_rules()
    assert a == b and a is not b  # a caller may change its copy
    a["versions"].clear()
    assert read_aci_rules()["versions"]


def test_a_planners_copy_and_broken_files(tmp_path):
    mine = tmp_path / "regles.json"
    mine.write_text(json.dumps(read_aci_rules()), encoding="utf-8")
    assert read_aci_rules(mine)["schema_version"] == 1
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match=r"broken\.json: not a JSON rules file"):
        read_aci_rules(broken)
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(InputError, match="is a JSON object, not a list"):
        read_aci_rules(listed)
    with pytest.raises(FileNotFoundError):
        read_aci_rules(tmp_path / "absent.json")
