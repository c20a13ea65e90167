"""Tell cheaply whether a DataFrame still holds what it held: the key of cpts_geo's memos.

A planner calls several functions on the same frames (the communes, the territory table) and a
site calls them once per page; checking the same national inputs again on every call was most of
the cost of a call. :func:`snapshot` records what a frame holds in a form that no change can
survive, so that a memo may reuse what it derived from the frame only while the frame is the same:

* a column backed by Arrow (pandas' ``str`` columns) is kept by its Arrow data, which is
  immutable: pandas gives a column new Arrow data when a value is set, in place or not;
* any other column is compared by value: a copy of its numbers (bytes, so that NaN equals NaN),
  of its categorical codes, of its mask, or of the addresses of the objects it holds (shapely
  geometries and Python strings are immutable; the copy keeps them alive, so no address is
  reused while the snapshot lives);
* the frame's class, column names, index, ``attrs``, dtypes and coordinate reference system.

A frame with a column of another kind gets no snapshot: the memo is skipped, never trusted.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Snapshot", "snapshot"]


def _addresses(objects: np.ndarray) -> np.ndarray:
    """The address of each object of an object array (its raw buffer, read as integers)."""
    return np.frombuffer(memoryview(objects), dtype=np.uintp)  # type: ignore[arg-type]


def _values_token(values: np.ndarray) -> tuple[Any, ...] | None:
    """A comparable copy of a NumPy array's content."""
    if values.dtype.kind == "O":
        held = np.array(values, dtype=object, copy=True)
        return ("O", held, _addresses(held).copy())
    if values.dtype.kind in "biufcmM":
        data = np.ascontiguousarray(values).copy()
        return ("n", data.dtype, data.shape, data.view(np.uint8))
    return None


def _same_values(token: tuple[Any, ...], values: np.ndarray) -> bool:
    if token[0] == "O":
        if values.dtype.kind != "O" or values.shape != token[2].shape:
            return False
        now = _addresses(np.ascontiguousarray(values))
        return bool(np.array_equal(now, token[2]))
    if values.dtype != token[1] or values.shape != token[2]:
        return False
    return bool(np.array_equal(np.ascontiguousarray(values).view(np.uint8), token[3]))


def _columns(frame: pd.DataFrame) -> list[Any]:
    """The array of each column, in order.

    Read from the frame's blocks when pandas offers it (a Series per column, with its copy of
    ``attrs``, costs more than the rest of a check); else through the Series.
    """
    mgr = getattr(frame, "_mgr", None)
    get = getattr(mgr, "iget_values", None)
    if get is not None and len(getattr(mgr, "items", ())) == frame.shape[1]:
        out = []
        for i in range(frame.shape[1]):
            values = get(i)
            if isinstance(values, np.ndarray):
                if values.ndim != 1:
                    break
                values = pd.arrays.NumpyExtensionArray(values)
            out.append(values)
        else:
            return out
    return [s.array for _, s in frame.items()]


def _column_token(arr: Any) -> tuple[Any, ...] | None:
    if isinstance(arr, pd.arrays.ArrowExtensionArray):
        return ("arrow", arr.dtype, arr.__arrow_array__())
    if isinstance(arr.dtype, pd.CategoricalDtype):
        codes = _values_token(np.asarray(arr.codes))
        return None if codes is None else ("cat", arr.dtype, codes)
    if isinstance(arr, pd.arrays.DatetimeArray | pd.arrays.TimedeltaArray):
        return ("dt", arr.dtype, _values_token(arr.asi8))
    if isinstance(arr, pd.arrays.IntegerArray | pd.arrays.FloatingArray | pd.arrays.BooleanArray):
        data = arr.to_numpy(dtype=arr.dtype.numpy_dtype, na_value=arr.dtype.numpy_dtype.type(0))
        return ("masked", arr.dtype, _values_token(data), _values_token(np.asarray(arr.isna())))
    if isinstance(arr, pd.arrays.NumpyExtensionArray):
        token = _values_token(arr.to_numpy())
        return None if token is None else ("np", arr.dtype, token)
    if type(arr).__name__ == "GeometryArray":  # geopandas: shapely objects and a CRS
        token = _values_token(np.asarray(arr))
        return None if token is None else ("geom", arr.crs, token)
    return None


def _same_column(token: tuple[Any, ...], arr: Any) -> bool:
    kind = token[0]
    if kind == "arrow":
        return (isinstance(arr, pd.arrays.ArrowExtensionArray) and arr.dtype == token[1]
                and arr.__arrow_array__() is token[2])
    if kind == "geom":
        if type(arr).__name__ != "GeometryArray":
            return False
        crs = arr.crs
        if not (crs is token[1] or crs == token[1]):
            return False
        return _same_values(token[2], np.asarray(arr))
    if arr.dtype != token[1]:
        return False
    if kind == "cat":
        return _same_values(token[2], np.asarray(arr.codes))
    if kind == "dt":
        return _same_values(token[2], arr.asi8)
    if kind == "masked":
        data = arr.to_numpy(dtype=arr.dtype.numpy_dtype, na_value=arr.dtype.numpy_dtype.type(0))
        return _same_values(token[2], data) and _same_values(token[3], np.asarray(arr.isna()))
    return _same_values(token[2], arr.to_numpy())


def _same_attrs(a: dict[str, Any], b: dict[str, Any]) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # values that do not compare (arrays, frames)
        return False


class Snapshot:
    """What a frame held when it was taken; :meth:`matches` tells whether a frame holds it."""

    def __init__(self, frame: pd.DataFrame, columns: list[tuple[Any, ...]]):
        self._type = type(frame)
        self._names = tuple(frame.columns)
        self._index = frame.index
        self._attrs = copy.deepcopy(frame.attrs)
        self._geometry = getattr(frame, "active_geometry_name", None)
        self._columns = columns

    def matches(self, frame: object) -> bool:
        """Whether ``frame`` holds exactly what the frame of this snapshot held."""
        if type(frame) is not self._type:
            return False
        assert isinstance(frame, pd.DataFrame)
        if tuple(frame.columns) != self._names:
            return False
        if not (frame.index is self._index or frame.index.equals(self._index)):
            return False
        if getattr(frame, "active_geometry_name", None) != self._geometry:
            return False
        if not _same_attrs(frame.attrs, self._attrs):
            return False
        return all(_same_column(token, arr) for token, arr in
                   zip(self._columns, _columns(frame), strict=True))


def snapshot(frame: object) -> Snapshot | None:
    """A :class:`Snapshot` of a DataFrame, or None when one of its columns cannot be compared.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"insee": pd.Series(["38185"], dtype="str"), "population": [1.0]})
    >>> snap = snapshot(df)
    >>> snap.matches(df), snap.matches(df.copy())
    (True, True)
    >>> df.loc[0, "population"] = 2.0
    >>> snap.matches(df)
    False
    """
    if not isinstance(frame, pd.DataFrame):
        return None
    columns = []
    for arr in _columns(frame):
        token = _column_token(arr)
        if token is None:
            return None
        columns.append(token)
    return Snapshot(frame, columns)
