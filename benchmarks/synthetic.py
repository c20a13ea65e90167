"""Synthetic national CPTS territories for benchmarks only (never shipped as data).

Built from real groups of communes: each EPCI à fiscalité propre becomes a CPTS, every third one
is left out (gaps), and one commune in twenty-five of each kept CPTS is also given to a
neighbouring CPTS (overlaps). About 800 CPTS with realistic populations.
"""

from __future__ import annotations

import pandas as pd

import cpts_geo

STATUSES = ["pré-projet", "lettre d'intention validée", "projet de santé validé", "ACI signé"]


def synthetic_territories(communes: pd.DataFrame | None = None) -> pd.DataFrame:
    if communes is None:
        communes = cpts_geo.load_communes()
    com = communes[communes["epci"].notna()][["insee", "epci"]]
    epcis = sorted(com["epci"].unique())
    kept = [e for i, e in enumerate(epcis) if i % 3 != 2]
    rows = com[com["epci"].isin(kept)].rename(columns={"epci": "cpts_id"})
    rows["cpts"] = "CPTS " + rows["cpts_id"]
    order = {e: i for i, e in enumerate(kept)}
    rows["status"] = rows["cpts_id"].map(lambda e: STATUSES[order[e] % 4])
    rows["status_date"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(
        rows["cpts_id"].map(order) % 1500, unit="D"
    )
    # overlaps: every 25th commune of a kept CPTS also goes to the CPTS of a neighbour
    links = cpts_geo.load_contiguity()
    links = links[(links["b"] != "") & (links["length_km"] > 0)]
    cpts_of = dict(zip(rows["insee"], rows["cpts_id"], strict=True))
    extra = []
    for i, (insee, cid) in enumerate(zip(rows["insee"], rows["cpts_id"], strict=True)):
        if i % 25:
            continue
        for b in links.loc[links["a"] == insee, "b"]:
            other = cpts_of.get(b)
            if other and other != cid:
                extra.append({"cpts_id": other, "insee": insee, "cpts": "CPTS " + other})
                break
    extra_df = pd.DataFrame(extra)
    extra_df = extra_df.merge(rows[["cpts_id", "status", "status_date"]].drop_duplicates(
        "cpts_id"), on="cpts_id")
    out = pd.concat([rows, extra_df], ignore_index=True)
    return out[["cpts", "cpts_id", "insee", "status", "status_date"]].drop_duplicates(
        ["cpts_id", "insee"]).reset_index(drop=True)
