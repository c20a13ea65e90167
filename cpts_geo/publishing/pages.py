"""What each page of the site shows, computed from prepared inputs (pure: no file is written).

The index holds the national, regional and departmental tables, the CPTS (with what the ACI
funding rules give their size class) and the changes since the last publication; each
département page holds its coverage, its coverage over time, its CPTS, its gap zones (zones
never cross the département's border there, their communes largest first), its overlaps and its
communes; each CPTS page its communes, its neighbours and its place on its département's map.
The commune search reads an index of every commune and its CPTS (:func:`search_index`).

File names never come from an input unchecked: a CPTS page is named after its ``cpts_id`` only
when that is a plain slug (``vallee-du-gier``), else after its position (``cpts-3``)
(:func:`page_names`).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from ..analysis.aci import AciRules
from ..analysis.changes import timeline_figures
from ..analysis.diagnostics import gap_zones, overlap_communes, territory_outlines
from ..analysis.funding import funding_figures
from ..analysis.inputs import Prepared
from ..analysis.proposals import without_proposals
from ..analysis.rates import area_rates, commune_figures, cpts_figures
from ..geography import departements
from ..io.writers import records

__all__ = ["CptsPage", "DepartementPage", "SiteData", "cpts_pages", "cpts_title",
           "departement_page", "page_names", "search_index", "site_data"]

#: Communes of a gap zone named in full on its page; the others are folded.
ZONE_NAMES_SHOWN = 8


@dataclass
class SiteData:
    """The national figures of a publication, computed once."""

    nation: pd.DataFrame
    regions: pd.DataFrame
    departements: pd.DataFrame
    cpts: gpd.GeoDataFrame
    communes: gpd.GeoDataFrame
    overlaps: gpd.GeoDataFrame
    gaps: gpd.GeoDataFrame  # zones within each département
    timeline: pd.DataFrame  # coverage of each département at each status date changing it
    undated: pd.DataFrame  # CPTS without a status date (not in the timeline): cpts, departements
    funding_sources: dict[str, dict[str, Any]]  # sources of the funding amounts shown, by id
    pages: list[str] = field(default_factory=list)
    _by_insee: pd.DataFrame | None = field(default=None, repr=False)
    _plain: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    _rows: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)
    _zone_communes: list[list[dict[str, Any]]] | None = field(default=None, repr=False)
    _records: dict[str, list[dict[str, Any]]] = field(default_factory=dict, repr=False)
    _claims: tuple[pd.DataFrame, list[dict[str, Any]]] | None = field(default=None, repr=False)

    def by_insee(self) -> pd.DataFrame:
        """Names and populations of the communes by INSEE code (made once)."""
        if self._by_insee is None:
            self._by_insee = pd.DataFrame(
                {"nom": self.communes["nom"].to_numpy(),
                 "population": self.communes["population"].to_numpy()},
                index=self.communes["insee"].to_numpy())
        return self._by_insee

    def plain(self, table: str) -> pd.DataFrame:
        """A national table (``"cpts"``, ``"communes"``...) without its geometries (made once)."""
        if table not in self._plain:
            df = getattr(self, table)
            plain = pd.DataFrame(df.drop(columns="geometry", errors="ignore"))
            plain.attrs = dict(df.attrs)
            self._plain[table] = plain
        return self._plain[table]

    def table_records(self, table: str) -> list[dict[str, Any]]:
        """The rows of a national table as JSON-ready dicts (:func:`~cpts_geo.io.writers.records`).

        Made once, shared by the pages that show them (not to be modified).
        """
        if table not in self._records:
            self._records[table] = records(self.plain(table))
        return self._records[table]

    def claims_records(self, claims: pd.DataFrame) -> list[dict[str, Any]]:
        """The rows of a published-versus-computed table as JSON-ready dicts (made once)."""
        if self._claims is None or self._claims[0] is not claims:
            self._claims = (claims, records(claims))
        return self._claims[1]

    def rows_of(self, table: str, code: str) -> np.ndarray:
        """The positions of the rows of a national table about one département, in order.

        ``table``: ``"departements"``, ``"communes"``, ``"overlaps"``, ``"timeline"`` (its
        ``departement``), ``"gaps"`` (its ``departements``) or ``"cpts"`` (a CPTS is about each
        département of its comma-separated ``departements``). The positions of every
        département are found once per table.
        """
        if table not in self._rows:
            if table == "cpts":
                self._rows[table] = _positions(self.cpts["departements"], sep=",")
            else:
                column = "departements" if table == "gaps" else "departement"
                self._rows[table] = _positions(getattr(self, table)[column])
        return self._rows[table].get(code, np.empty(0, dtype=np.intp))

    def zone_communes(self) -> list[list[dict[str, Any]]]:
        """The communes of each gap zone (by position in ``gaps``), most populous first.

        Each commune as ``{"insee", "nom", "population"}`` (population None when unknown); ties
        by name, then in the zone's order. Made once for every zone.
        """
        if self._zone_communes is None:
            self._zone_communes = _zone_communes(self.gaps, self.by_insee())
        return self._zone_communes


def _positions(values: pd.Series, sep: str | None = None) -> dict[str, np.ndarray]:
    """The positions of the rows holding each value, ascending; with ``sep``, of each item.

    With ``sep``, a cell is a ``sep``-separated list and a row is listed once under each of its
    items. Missing values are under no value.
    """
    keys: Any = values.to_numpy()
    pos = np.arange(len(values), dtype=np.intp)
    if sep is not None:
        items = values.reset_index(drop=True).str.split(sep).explode()
        keys, pos = items.to_numpy(), items.index.to_numpy(dtype=np.intp)
    pairs = pd.DataFrame({"key": keys, "pos": pos}).drop_duplicates()
    at = pairs["pos"].to_numpy()
    return {key: at[i] for key, i in pairs.groupby("key", sort=False).indices.items()}


def _zone_communes(gaps: pd.DataFrame, by_insee: pd.DataFrame) -> list[list[dict[str, Any]]]:
    """The communes of each gap zone, most populous first (see :meth:`SiteData.zone_communes`)."""
    codes = [str(c).split(", ") for c in gaps["insee"]]
    zone = np.repeat(np.arange(len(codes)), np.array([len(c) for c in codes], dtype=np.intp))
    members = by_insee.reindex(list(itertools.chain.from_iterable(codes)))
    listed = pd.DataFrame({
        "zone": zone, "insee": members.index, "nom": members["nom"].to_numpy(),
        "population": pd.to_numeric(members["population"], errors="coerce").to_numpy(),
        "k": np.arange(len(members))})
    # all zones in one sort: by zone, then as a zone's own sort would (its order breaking ties)
    listed = listed.sort_values(["zone", "population", "nom", "k"],
                                ascending=[True, False, True, True], na_position="last")
    rows = [{"insee": code, "nom": nom, "population": None if missing else int(n)}
            for code, nom, n, missing in zip(
                listed["insee"].tolist(), listed["nom"].tolist(), listed["population"].tolist(),
                listed["population"].isna().tolist(), strict=True)]
    bounds = np.searchsorted(listed["zone"].to_numpy(), np.arange(len(codes) + 1))
    return [rows[a:b] for a, b in itertools.pairwise(bounds.tolist())]


@dataclass
class DepartementPage:
    """The figures of one département's page (its tables without geometries)."""

    code: str
    row: dict[str, Any]
    coverage: pd.DataFrame
    cpts: pd.DataFrame
    gaps: pd.DataFrame
    overlaps: pd.DataFrame
    communes: pd.DataFrame
    claims: pd.DataFrame  # published figures about this département or its région
    timeline: pd.DataFrame
    undated: list[str]  # CPTS of the département left out of its timeline (no status date)
    zone_communes: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    # communes of each gap zone, most populous first: insee, nom, population
    _shown: dict[str, list[dict[str, Any]]] = field(default_factory=dict, repr=False)

    def shown(self, table: str) -> list[dict[str, Any]]:
        """The rows of one of its tables (``"coverage"``, ``"cpts"``...) as JSON-ready dicts.

        As :func:`~cpts_geo.io.writers.records` gives them, for the page and its summary;
        :func:`departement_page` takes them from the national tables converted once (shared:
        not to be modified).
        """
        if table not in self._shown:
            self._shown[table] = records(getattr(self, table))
        return self._shown[table]


@dataclass
class CptsPage:
    """The figures of one CPTS's page.

    Its communes are its rows of one table of the communes of every CPTS page (``members``,
    shared by the pages of a publication): ``members.iloc[rows]``, or :attr:`communes`.
    """

    cpts_id: str
    name: str  # the page's folder: a checked slug of cpts_id, or cpts-<n>
    row: dict[str, Any]  # its row of the CPTS table (population, size class, parts, funding)
    members: pd.DataFrame = field(repr=False)  # insee, nom, departement, population, share,
    # other_cpts of the communes of every page, each page's rows sorted by INSEE code
    rows: slice  # the rows of its communes in members
    neighbours: list[str]  # cpts_id of the CPTS sharing a border or a commune with it
    departements: list[str]
    map_departement: str | None  # the département page whose map shows it (most inhabitants)

    @property
    def communes(self) -> pd.DataFrame:
        """Its communes: insee, nom, departement, population, share, other_cpts."""
        out = self.members.iloc[self.rows].reset_index(drop=True)
        out.attrs = dict(self.members.attrs)
        return out


def _with_funding(cpts: gpd.GeoDataFrame, p: Prepared,
                  rules: AciRules) -> tuple[gpd.GeoDataFrame, dict[str, dict[str, Any]]]:
    """The CPTS table with the funding its rules give, and the sources of those amounts."""
    funding = funding_figures(p, rules)
    amounts = [c for c in funding.columns if c.endswith("_eur")]
    keep = ["cpts_id", "rules_version", "version_basis", *amounts, "derived"]
    ids: dict[str, dict[str, Any]] = {}
    source_ids = []
    for r in funding.to_dict("records"):
        version, _ = rules.version_at(r["status_date"])
        used = [] if version is None else [
            a.source for a in version.amounts
            if a.taille == r["size_class"] and f"{a.item}_eur" in amounts]
        source_ids.append("; ".join(dict.fromkeys(used)))
        for sid in used:
            ids[sid] = dict(rules.sources[sid])
    extra = funding[keep].assign(funding_sources=source_ids)
    out = cpts.merge(extra, on="cpts_id", how="left")
    out = gpd.GeoDataFrame(out, geometry="geometry", crs=cpts.crs)
    out.attrs = dict(cpts.attrs)
    return out, dict(sorted(ids.items()))


def site_data(p: Prepared, rules: AciRules, pages: list[str] | None = None) -> SiteData:
    """National figures of prepared national inputs; ``pages`` default: départements with CPTS.

    Coverage rates, gap zones and timelines are those of the real CPTS: propositions (status
    ``"proposition"``) are listed and drawn, not counted, as on the maps.
    """
    cc = p.memo("commune_figures", commune_figures)
    table = p.memo("cpts_figures", cpts_figures)
    cpts = p.memo("cpts_outlines", lambda q: territory_outlines(q, table))
    cpts, funding_sources = _with_funding(cpts, p, rules)
    real = p.memo("without_proposals", without_proposals)
    timeline = real.memo("timeline", lambda q: timeline_figures(q, "departement"))
    real_table = real.memo("cpts_figures", cpts_figures)
    undated = real_table.loc[real_table["status_date"].isna(), ["cpts", "departements"]]
    deps = area_rates(real, "departement")
    touched = sorted(set(cc.loc[cc["covered"], "departement"]))
    return SiteData(
        nation=area_rates(real, "nation"),
        regions=area_rates(real, "region"),
        departements=deps,
        cpts=cpts,
        communes=cc,
        overlaps=overlap_communes(p, cc),
        gaps=real.memo("gaps_by_departement", lambda q: gap_zones(q, by_departement=True)),
        timeline=timeline,
        undated=undated.reset_index(drop=True),
        funding_sources=funding_sources,
        pages=touched if pages is None else pages,
    )


def departement_page(data: SiteData, code: str,
                     claims: pd.DataFrame | None = None) -> DepartementPage:
    """The figures of one département, taken from the national ones.

    ``claims``: the published-versus-computed table; the page keeps the claims about the
    département and its région. The page's tables have no geometry (its map is drawn apart):
    its rows of the national tables, found once for every département
    (:meth:`SiteData.rows_of`), and their JSON-ready rows (:meth:`DepartementPage.shown`)
    those of the national tables converted once.
    """
    at = {table: data.rows_of(table, code)
          for table in ("departements", "cpts", "gaps", "overlaps", "timeline", "communes")}

    def rows(table: str) -> pd.DataFrame:
        return data.plain(table).take(at[table]).reset_index(drop=True)

    def shown(table: str) -> list[dict[str, Any]]:
        national = data.table_records(table)
        return [national[i] for i in at[table].tolist()]

    cov = rows("departements")
    gaps = rows("gaps")
    gaps["zone"] = np.arange(1, len(gaps) + 1)
    listed = {"coverage": shown("departements"), "cpts": shown("cpts"),
              "gaps": [{**r, "zone": k} for k, r in enumerate(shown("gaps"), start=1)],
              "overlaps": shown("overlaps"), "timeline": shown("timeline")}
    region = departements()[code].region
    mine = pd.DataFrame()
    if claims is not None:
        kind, scope = claims["scope_type"].to_numpy(), claims["scope"].to_numpy()
        about = np.flatnonzero(((kind == "departement") & (scope == code))
                               | ((kind == "region") & (scope == region)))
        mine = claims.take(about)
        national = data.claims_records(claims)
        listed["claims"] = [national[i] for i in about.tolist()]
    touching = [code in str(ds).split(",") for ds in data.undated["departements"]]
    undated = data.undated[np.asarray(touching, dtype=bool)]
    zones = data.zone_communes()
    return DepartementPage(
        code=code,
        row=cov.iloc[0].to_dict(),
        coverage=cov,
        cpts=rows("cpts"),
        gaps=gaps,
        overlaps=rows("overlaps"),
        communes=rows("communes"),
        claims=mine.reset_index(drop=True),
        timeline=rows("timeline"),
        undated=sorted(undated["cpts"].astype(str)),
        zone_communes={k: zones[pos] for k, pos in enumerate(at["gaps"].tolist(), start=1)},
        _shown=listed,
    )


_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
#: Names Windows refuses for a file or a folder, whatever the extension.
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
             *(f"lpt{i}" for i in range(10))}


def page_names(cpts_ids: list[str]) -> dict[str, str]:
    """A safe, unique folder name for the page of each CPTS.

    The ``cpts_id`` itself when it is a plain slug (lowercase letters, digits and single
    hyphens, 60 characters at most, not a name Windows reserves); otherwise ``cpts-<n>``, ``n``
    its position among the sorted ids. No name derives from an input unchecked.

    Examples
    --------
    >>> list(page_names(["vallee-du-gier", "../../etc", "<img src=x>", "aux"]).values())
    ['vallee-du-gier', 'cpts-1', 'cpts-2', 'cpts-3']
    """
    ids = sorted(cpts_ids)
    names: dict[str, str] = {}
    for cid in ids:
        if isinstance(cid, str) and len(cid) <= 60 and _SLUG.fullmatch(cid) \
                and cid not in _RESERVED:
            names[cid] = cid
    used = set(names.values())
    for n, cid in enumerate(ids, start=1):
        if cid in names:
            continue
        name = f"cpts-{n}"
        while name in used:
            name += "-x"
        names[cid] = name
        used.add(name)
    return {cid: names[cid] for cid in cpts_ids}


def _neighbours(p: Prepared) -> dict[str, set[str]]:
    """The CPTS each CPTS borders (a commune of each sharing a border) or shares a commune with."""
    ins = p.inside[["insee", "cpts_id"]].astype(str)
    edges = p.graph.edges(ins["insee"].unique())
    pairs = pd.concat([
        edges.merge(ins.rename(columns={"insee": "a", "cpts_id": "x"}), on="a")
             .merge(ins.rename(columns={"insee": "b", "cpts_id": "y"}), on="b")[["x", "y"]],
        ins.merge(ins, on="insee", suffixes=("_x", "_y")).rename(
            columns={"cpts_id_x": "x", "cpts_id_y": "y"})[["x", "y"]],
    ], ignore_index=True)
    pairs = pairs[pairs["x"] != pairs["y"]]
    out: dict[str, set[str]] = {}
    for x, y in zip(pairs["x"].tolist(), pairs["y"].tolist(), strict=True):
        out.setdefault(x, set()).add(y)
        out.setdefault(y, set()).add(x)
    return out


def cpts_pages(p: Prepared, data: SiteData) -> list[CptsPage]:
    """The page of every CPTS that has a commune in a département with a page.

    The communes of every page are one table (each page's ``members``), made once.
    """
    pages = set(data.pages)
    cpts = data.cpts[data.cpts["departements"].str.split(",").map(
        lambda ds: bool(pages & set(ds)))]
    names = page_names(sorted(data.cpts["cpts_id"].astype(str)))
    neighbours = _neighbours(p)
    ins = p.inside
    c = p.communes
    nom = c["nom"].astype(str).to_numpy(dtype=object) if "nom" in c.columns else p.codes
    dep = c["departement"].astype(str).to_numpy(dtype=object)
    # the rows of every CPTS at once, sorted by CPTS then commune (one sort, not one per CPTS)
    ins_cid = ins["cpts_id"].astype(str).to_numpy(dtype=object)
    ins_insee = ins["insee"].astype(str).to_numpy(dtype=object)
    ins_name = ins["cpts"].astype(str).to_numpy(dtype=object)
    order = np.lexsort((ins_insee, ins_cid))
    starts = {cid: (int(a), int(b)) for cid, a, b in _runs(ins_cid[order])}
    rows = cpts.drop(columns="geometry").to_dict("records")
    spans = [starts.get(str(row["cpts_id"]), (0, 0)) for row in rows]
    # the rows of the pages' CPTS, page after page
    take = (np.concatenate([order[a:b] for a, b in spans]) if spans
            else np.empty(0, dtype=np.intp))
    bounds = np.cumsum([0, *(b - a for a, b in spans)]).tolist()
    pos = ins["pos"].to_numpy()[take]
    share = ins["share"].to_numpy()[take]
    codes = ins_insee[take]
    own = np.repeat(np.asarray([row["cpts"] for row in rows], dtype=object),
                    np.diff(bounds).astype(np.intp))
    names_of: dict[str, list[str]] = {}
    for code, name in zip(ins_insee, ins_name, strict=True):
        names_of.setdefault(code, []).append(name)
    members = pd.DataFrame({
        "insee": pd.array(codes, dtype="str"),
        "nom": nom[pos],
        "departement": dep[pos],
        "population": pd.array(c["population"].to_numpy()[pos], dtype="Int64"),
        "share": share,
        "other_cpts": ["; ".join(n for n in names_of.get(code, []) if n != mine)
                       for code, mine in zip(codes, own, strict=True)],
    })
    members.attrs = dict(p.attrs)
    weight = p.population[pos] * share
    out = []
    for row, a, b in zip(rows, bounds[:-1], bounds[1:], strict=True):
        cid = str(row["cpts_id"])
        weights: dict[str, float] = {}
        for d, w in zip(dep[pos[a:b]], weight[a:b], strict=True):
            weights[d] = weights.get(d, 0.0) + w
        ranked = [d for d, _ in sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))
                  if d in pages]
        out.append(CptsPage(
            cpts_id=cid, name=names[cid], row=row, members=members, rows=slice(a, b),
            neighbours=sorted(neighbours.get(cid, set())),
            departements=sorted(set(dep[pos[a:b]])),
            map_departement=ranked[0] if ranked else None,
        ))
    return out


def _runs(values: np.ndarray) -> list[tuple[Any, int, int]]:
    """The runs of equal values of a sorted array: (value, start, stop)."""
    if len(values) == 0:
        return []
    change = np.flatnonzero(values[1:] != values[:-1]) + 1
    bounds = np.concatenate([[0], change, [len(values)]])
    return [(values[a], int(a), int(b)) for a, b in itertools.pairwise(bounds)]


def cpts_title(name: str) -> str:
    """``"CPTS <name>"``, unless the name already says CPTS.

    Examples
    --------
    >>> cpts_title("Vallée du Gier"), cpts_title("CPTS Actes Santé")
    ('CPTS Vallée du Gier', 'CPTS Actes Santé')
    """
    return name if name[:4].upper() == "CPTS" else f"CPTS {name}"


def search_index(p: Prepared, data: SiteData, links: dict[str, str]) -> dict[str, Any]:
    """What the commune search reads: every commune (or arrondissement) and its CPTS.

    ``links``: the page of each CPTS (by ``cpts_id``). Returns ``{"cpts": [[title, link], ...],
    "deps": {code: [name, link]}, "communes": [[insee, nom, [cpts...], population], ...]}``,
    the CPTS of a commune given by their position in ``cpts`` (its département is the start of
    its code).
    """
    table = data.cpts.sort_values(["cpts", "cpts_id"])
    ids = [str(i) for i in table["cpts_id"]]
    k = {cid: n for n, cid in enumerate(ids)}
    ins = p.inside
    of: dict[int, list[int]] = {}
    for pos, cid in zip(ins["pos"].tolist(), ins["cpts_id"].astype(str).tolist(),
                        strict=True):
        of.setdefault(pos, []).append(k[cid])
    for ks in of.values():
        ks.sort()
    c = p.communes
    nom = c["nom"].astype(str) if "nom" in c.columns else c["insee"].astype(str)
    pop = pd.to_numeric(c["population"], errors="coerce").fillna(0).round().astype(int)
    communes = [[code, name, of.get(i, []), int(n)]
                for i, (code, name, n) in enumerate(zip(p.codes, nom, pop, strict=True))]
    deps = {d: [info.nom, f"departements/{d}/index.html" if d in set(data.pages) else None]
            for d, info in departements().items()}
    return {"cpts": [[cpts_title(str(n)), links.get(cid)]
                     for n, cid in zip(table["cpts"], ids, strict=True)],
            "deps": deps, "communes": communes}
