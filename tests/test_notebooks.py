"""The notebooks run top to bottom through a real Jupyter kernel, offline, and show their maps
and figures inline (HTML for maps, an image for figures)."""

from __future__ import annotations

import json
import re

import nbformat
import pytest
from helpers import ROOT
from nbclient import NotebookClient

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_notebooks_are_stored_without_outputs():
    assert len(NOTEBOOKS) >= 2
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text("utf-8"))
        assert all(not c.get("outputs") and c.get("execution_count") is None
                   for c in nb["cells"] if c["cell_type"] == "code"), path.name


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_a_kernel_and_shows_its_maps(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    tagged = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = set(cell.metadata.get("tags", []))
        kinds = {k for out in cell.get("outputs", []) for k in out.get("data", {})}
        if "map" in tags:
            tagged += 1
            html = next(out["data"]["text/html"] for out in cell.outputs
                        if "text/html" in out.get("data", {}))
            # the map is inline and offline: Leaflet embedded, nothing loaded from a CDN
            assert "L.map(" in html.replace("&quot;", '"') or "L.map" in html
            assert not re.search(r"<(script|link)[^>]+(src|href)=[^>]*https?://", html)
        if "figure" in tags:
            tagged += 1
            assert "image/png" in kinds
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        assert errors == []
    assert tagged >= 1
