"""The contiguity graph: which communes share a border, shared by every computation that needs it.

Gap zones, the parts of a CPTS, map colouring and proposals all ask the same questions of the
same graph: which of these communes form connected groups, who borders a group, how long is the
border with the sea or a foreign country. :class:`ContiguityGraph` answers them on integer
arrays (:func:`connected_labels`: scipy's connected components), and converts to a libpysal
``Graph`` for spatial analysis libraries such as spopt.

Two communes are neighbours when they share a border of positive length (touching at a point is
not enough). The bundle lists Paris, Lyon and Marseille both whole and by arrondissement; a graph
is used at one granularity (:meth:`ContiguityGraph.at_granularity`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..geography import arrondissements, city_of_arrondissement

__all__ = ["ContiguityGraph", "connected_labels"]


def connected_labels(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Label the connected components of ``n`` nodes joined by the edges ``a[i] -- b[i]``.

    scipy's ``connected_components`` on the undirected graph: labels are numbered by the
    smallest node of each component (0 for the component of node 0).

    Examples
    --------
    >>> connected_labels(5, np.array([3, 1]), np.array([4, 3])).tolist()
    [0, 1, 2, 1, 1]
    """
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    from scipy.sparse import coo_array
    from scipy.sparse.csgraph import connected_components

    a = np.asarray(a, dtype=np.int64)
    graph = coo_array((np.ones(len(a), dtype=np.int8), (a, np.asarray(b, dtype=np.int64))),
                      shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)


class ContiguityGraph:
    """Borders between communes, with their length.

    Parameters
    ----------
    links : pandas.DataFrame
        Columns ``a``, ``b`` (INSEE codes) and ``length_km``, as returned by
        :func:`cpts_geo.load_contiguity`: each pair in both directions, and rows with ``b == ""``
        giving the length of ``a``'s border with no commune (sea, foreign country, hole).

    Examples
    --------
    >>> import pandas as pd
    >>> links = pd.DataFrame({"a": ["1", "2", "2", "3"], "b": ["2", "1", "3", "2"],
    ...                       "length_km": [1.0, 1.0, 0.0, 0.0]})
    >>> g = ContiguityGraph(links)
    >>> g.components(["1", "2", "3"]).tolist()  # 2 and 3 touch at a point only
    [0, 0, 1]
    >>> g.neighbours("2"), len(g.edges(touching=True))
    (['1'], 2)
    """

    def __init__(self, links: pd.DataFrame):
        missing = [c for c in ("a", "b", "length_km") if c not in links.columns]
        if missing:
            raise InputError(
                f"`contiguity` lacks column(s) {missing}; expected cpts_geo.load_contiguity()"
            )
        a = links["a"].to_numpy(dtype=object)
        b = links["b"].to_numpy(dtype=object)
        length = links["length_km"].to_numpy(dtype=float)
        outside = b == ""
        inner = ~outside
        codes, inv = np.unique(np.concatenate([a, b[inner]]).astype(str), return_inverse=True)
        ia_all, ib = inv[: len(a)], inv[len(a):]
        ext = np.bincount(ia_all[outside], weights=length[outside], minlength=len(codes))
        ia, length = ia_all[inner], length[inner]
        # symmetric: each pair once, then both directions (pairs given one way are completed)
        key = np.minimum(ia, ib) * len(codes) + np.maximum(ia, ib)
        _, first = np.unique(key, return_index=True)
        ia, ib, length = ia[first], ib[first], length[first]
        keep = ia != ib
        self._init(codes, np.concatenate([ia[keep], ib[keep]]),
                   np.concatenate([ib[keep], ia[keep]]),
                   np.concatenate([length[keep], length[keep]]), ext)

    def _init(self, codes: np.ndarray, a: np.ndarray, b: np.ndarray, length: np.ndarray,
              exterior: np.ndarray) -> None:
        order = np.lexsort((b, a))
        self.codes = codes  # sorted node codes
        self._a, self._b, self._length = a[order], b[order], length[order]
        self._exterior = exterior  # border with no commune, by node
        self._index = pd.Index(codes)

    # -- construction -------------------------------------------------------------------------
    def _subset_nodes(self, keep_node: np.ndarray) -> ContiguityGraph:
        out = object.__new__(ContiguityGraph)
        keep_edge = keep_node[self._a] & keep_node[self._b]
        new_id = np.cumsum(keep_node) - 1
        out._init(self.codes[keep_node], new_id[self._a[keep_edge]],
                  new_id[self._b[keep_edge]], self._length[keep_edge],
                  self._exterior[keep_node])
        return out

    def at_granularity(self, in_use: Iterable[str]) -> ContiguityGraph:
        """The graph with Paris, Lyon and Marseille whole or split as ``in_use`` has them.

        A city is split when one of its arrondissements is in ``in_use``; then the city's own
        node is dropped, else its arrondissements' nodes are.
        """
        used = set(in_use)
        split = frozenset(city for a, city in city_of_arrondissement().items() if a in used)
        cache = self.__dict__.setdefault("_granularities", {})
        if split not in cache:
            drop = split | {a for city, arms in arrondissements().items() if city not in split
                            for a in arms}
            keep = ~self._index.isin(list(drop))
            cache[split] = self if keep.all() else self._subset_nodes(np.asarray(keep))
        return cache[split]

    # -- queries --------------------------------------------------------------------------------
    def nodes(self, codes: Iterable[str] | np.ndarray | pd.Series) -> np.ndarray:
        """Node id of each code (-1 for a code the graph does not know: no neighbour)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if isinstance(codes, pd.Series):
            values = pa.array(codes.astype("str"), type=pa.large_string())
        else:
            items = codes if isinstance(codes, np.ndarray) else list(codes)
            values = pa.array(np.asarray(items, dtype=object), type=pa.large_string())
        if "_arrow_codes" not in self.__dict__:
            self._arrow_codes = pa.array(self.codes, type=pa.large_string())
        found = pc.index_in(values, value_set=self._arrow_codes)
        return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)

    def _mask(self, node: np.ndarray) -> np.ndarray:
        mask = np.zeros(len(self.codes), dtype=bool)
        mask[node[node >= 0]] = True
        return mask

    def components(self, codes: Iterable[str] | np.ndarray) -> np.ndarray:
        """Label the connected groups of ``codes`` (by position, labels 0, 1, ...).

        Only borders of positive length between two of ``codes`` count. A code without a known
        neighbour is a group of its own.
        """
        return self.node_components(self.nodes(codes))

    def node_components(self, node: np.ndarray) -> np.ndarray:
        """:meth:`components` on node ids (-1: a commune the graph does not know)."""
        n = len(node)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        local = np.full(len(self.codes), -1, dtype=np.int64)
        known = node >= 0
        local[node[known]] = np.flatnonzero(known)
        la, lb = local[self._a], local[self._b]
        sel = (la >= 0) & (lb >= 0) & (self._length > 0)
        return connected_labels(n, la[sel], lb[sel])

    def group_components(self, groups: pd.DataFrame, key: str = "cpts_id") -> np.ndarray:
        """Label connected groups within each group of a (``key``, ``insee``) table at once.

        Two rows are joined when they have the same ``key`` and their communes share a border of
        positive length. Returns one label per row (labels unique across groups).
        """
        return self.node_group_components(self.nodes(groups["insee"]),
                                          pd.factorize(groups[key])[0])

    def _pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Each pair of neighbours with a border of positive length once: (a, b), a < b."""
        if "_pair_arrays" not in self.__dict__:
            sel = (self._length > 0) & (self._a < self._b)
            self._pair_arrays = (self._a[sel], self._b[sel])
        return self._pair_arrays

    def node_group_components(self, node: np.ndarray, group: np.ndarray) -> np.ndarray:
        """:meth:`group_components` on node ids (-1: unknown) and integer group ids.

        Each border joins the rows of its two communes that are in one group: found in a table
        of one row per node, and in sorted keys for the few nodes with rows in several groups
        (a commune in several CPTS); :func:`connected_labels` labels the connected rows.
        """
        n = len(node)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        node = np.asarray(node, dtype=np.int64)
        group = np.asarray(group, dtype=np.int64)
        rows = np.flatnonzero(node >= 0)
        row_at = np.full(len(self.codes), -1, dtype=np.int64)
        row_at[node[rows]] = rows
        pa_, pb_ = self._pairs()
        ra, rb = row_at[pa_], row_at[pb_]
        ok = (ra >= 0) & (rb >= 0) & (np.take(group, ra, mode="wrap")
                                      == np.take(group, rb, mode="wrap"))  # -1: no row
        a, b = ra[ok], rb[ok]
        others = rows[row_at[node[rows]] != rows]  # more rows of a node that holds several
        if len(others):  # their neighbours' rows of their group, in the table or among them
            if "_csr" not in self.__dict__:
                sel = self._length > 0
                self._csr = (np.searchsorted(self._a[sel], np.arange(len(self.codes) + 1)),
                             self._b[sel])
            start, to = self._csr
            degree = np.diff(start)[node[others]]
            o_row = np.repeat(others, degree)
            nb = to[np.arange(len(o_row)) + np.repeat(start[node[others]] - np.cumsum(degree)
                                                      + degree, degree)]
            at_nb = row_at[nb]
            in_table = (at_nb >= 0) & (np.take(group, at_nb, mode="wrap") == group[o_row])
            width = len(self.codes) + 1
            keys = group[others] * width + node[others]
            order = np.argsort(keys)
            wanted = group[o_row] * width + nb
            at = np.minimum(np.searchsorted(keys[order], wanted), len(others) - 1)
            among = keys[order][at] == wanted
            a = np.concatenate([a, o_row[in_table], o_row[among]])
            b = np.concatenate([b, at_nb[in_table], others[order[at[among]]]])
        return connected_labels(n, a, b)

    def border_arrays(self, node: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Borders of positive length from the nodes ``node``: (from, to, length_km) arrays."""
        sel = self._mask(node)[self._a] & (self._length > 0)
        return self._a[sel], self._b[sel], self._length[sel]

    def exterior(self, node: np.ndarray) -> np.ndarray:
        """Length (km) of each node's border with no commune (0 for an unknown node)."""
        out = np.zeros(len(node))
        known = node >= 0
        out[known] = self._exterior[node[known]]
        return out

    def border(self, codes: Iterable[str]) -> pd.DataFrame:
        """Borders of ``codes`` with every neighbour (positive length), and with the outside.

        Returns
        -------
        pandas.DataFrame
            Columns ``a`` (one of ``codes``), ``b`` (a neighbour, ``""`` for the outside: sea,
            foreign country or a hole of the boundary data) and ``length_km``.
        """
        node = self.nodes(codes)
        a, b, length = self.border_arrays(node)
        known = np.unique(node[node >= 0])
        ext = self._exterior[known]
        outer = known[ext > 0]
        return pd.DataFrame({
            "a": np.concatenate([self.codes[a], self.codes[outer]]),
            "b": np.concatenate([self.codes[b], np.full(len(outer), "", dtype=object)]),
            "length_km": np.concatenate([length, self._exterior[outer]]),
        })

    def neighbours(self, code: str) -> list[str]:
        """Codes of the communes sharing a border of positive length with ``code``."""
        pos = self.nodes([code])[0]
        if pos < 0:
            return []
        sel = (self._a == pos) & (self._length > 0)
        return sorted(self.codes[self._b[sel]].tolist())

    def edges(self, codes: Iterable[str] | None = None, *, touching: bool = False
              ) -> pd.DataFrame:
        """Each pair of neighbours once (``a < b``), optionally among ``codes`` only.

        ``touching``: also the pairs that touch at a point only (length 0).
        """
        sel = self._a < self._b
        if not touching:
            sel &= self._length > 0
        if codes is not None:
            mask = self._mask(self.nodes(list(codes)))
            sel &= mask[self._a] & mask[self._b]
        return pd.DataFrame({"a": self.codes[self._a[sel]], "b": self.codes[self._b[sel]],
                             "length_km": self._length[sel]})

    def to_libpysal(self, codes: Iterable[str] | None = None) -> Any:
        """The graph (optionally restricted to ``codes``) as a ``libpysal.graph.Graph``.

        Weights are the shared border lengths in km. Needs libpysal (``pip install libpysal``).
        """
        try:
            from libpysal.graph import Graph
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("to_libpysal needs libpysal: pip install libpysal") from exc
        ids = list(self.codes) if codes is None else list(codes)
        both = self.edges(ids)
        table = pd.concat([both, both.rename(columns={"a": "b", "b": "a"})], ignore_index=True)
        isolates = sorted(set(ids) - set(table["a"]))
        table = pd.concat([table, pd.DataFrame({"a": isolates, "b": isolates,
                                                "length_km": 0.0})], ignore_index=True)
        return Graph.from_arrays(table["a"].to_numpy(), table["b"].to_numpy(),
                                 table["length_km"].to_numpy())

    def __len__(self) -> int:
        return len(self.codes)

    def __repr__(self) -> str:
        n = int((self._length > 0).sum()) // 2
        return f"ContiguityGraph({len(self.codes)} communes, {n} borders)"
