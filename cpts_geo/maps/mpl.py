"""Matplotlib, imported on demand, and figures that Jupyter shows inline.

matplotlib is an optional dependency (``pip install 'cpts-geo[plot]'``): the static figures
import it through :func:`matplotlib_for`, which names the function that needs it when it is
missing. Figures are built with the object API (no pyplot state), so they work on a server.
"""

from __future__ import annotations

import io
from typing import Any

__all__ = ["inline_figure", "matplotlib_for"]


def matplotlib_for(needed_by: str) -> Any:
    """The ``matplotlib`` module with the submodules the figures use, or a clear ImportError."""
    try:
        import matplotlib.dates
        import matplotlib.figure
        import matplotlib.patches
        import matplotlib.ticker
    except ImportError as exc:
        raise ImportError(
            f"{needed_by} needs matplotlib: pip install 'cpts-geo[plot]' "
            "(or pip install matplotlib)"
        ) from exc
    return matplotlib


def inline_figure(needed_by: str, **kwargs: Any) -> Any:
    """A matplotlib Figure that Jupyter displays inline as PNG, without ``%matplotlib inline``.

    IPython shows any object with a ``_repr_png_`` method as an image.
    """
    mpl = matplotlib_for(needed_by)

    class InlineFigure(mpl.figure.Figure):  # type: ignore[name-defined]
        def _repr_png_(self) -> bytes:
            buffer = io.BytesIO()
            self.savefig(buffer, format="png", dpi=100)
            return buffer.getvalue()

    return InlineFigure(**kwargs)
