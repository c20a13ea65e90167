"""ACI size classes ("tailles") of a CPTS by population.

The *accord conventionnel interprofessionnel* (ACI) of 20 June 2019 funds a CPTS according to its
size class. The texts give taille 1 as "moins de 40 000 habitants", taille 2 "entre 40 000 et
80 000", taille 3 "entre 80 000 et 175 000" and taille 4 "plus de 175 000".

Convention at the bounds (the texts say "entre" for both ends of tailles 2 and 3, so the
placement of exactly 80,000 is not established by them): a population of exactly 40,000 is
taille 2 (it is not "moins de 40 000"), exactly 80,000 is taille 2 and exactly 175,000 is taille
3 (upper bounds inclusive, since 175,000 is not "plus de 175 000").
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["SIZE_CLASSES", "size_class", "size_classes"]

#: (taille, lower bound, upper bound) in inhabitants; see the module's convention at the bounds.
SIZE_CLASSES: tuple[tuple[int, int, float], ...] = (
    (1, 0, 40_000),
    (2, 40_000, 80_000),
    (3, 80_000, 175_000),
    (4, 175_000, float("inf")),
)


def size_class(population: float | int | None) -> int | None:
    """ACI size class (taille 1 to 4) of a CPTS of this population.

    Parameters
    ----------
    population : number or None
        Inhabitants of the CPTS territory.

    Returns
    -------
    int or None
        1 (< 40,000), 2 (40,000 to 80,000), 3 (over 80,000 up to 175,000), 4 (> 175,000);
        None when the population is missing or negative.

    Examples
    --------
    >>> size_class(11_000), size_class(40_000), size_class(80_000), size_class(175_001)
    (1, 2, 2, 4)
    """
    if population is None or pd.isna(population) or population < 0:
        return None
    if population < SIZE_CLASSES[0][2]:
        return SIZE_CLASSES[0][0]
    return next(cls for cls, _, high in SIZE_CLASSES[1:] if population <= high)


def size_classes(population: pd.Series | np.ndarray) -> pd.Series:
    """:func:`size_class` of many populations at once (nullable ``Int64``).

    Examples
    --------
    >>> size_classes(pd.Series([39_999, 40_000, 80_001, None])).tolist()
    [1, 2, 3, <NA>]
    """
    pop = pd.to_numeric(pd.Series(population), errors="coerce").astype(float)
    values = pop.to_numpy()
    cls = np.where(values < SIZE_CLASSES[0][2], 1,
                   np.searchsorted([SIZE_CLASSES[1][2], SIZE_CLASSES[2][2]], values, "left") + 2)
    out = pd.array(cls, dtype="Int64")
    out[np.isnan(values) | (values < 0)] = pd.NA
    return pd.Series(out, index=pd.Series(population).index)
