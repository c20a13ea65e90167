"""Coverage computations: pure functions of prepared inputs, and their public wrappers.

:mod:`~cpts_geo.analysis.inputs` validates and completes the inputs once;
:mod:`~cpts_geo.analysis.rates` counts coverage by area, CPTS and commune;
:mod:`~cpts_geo.analysis.diagnostics` finds gaps, overlaps and outlines;
:mod:`~cpts_geo.analysis.graph` is the contiguity graph they share;
:mod:`~cpts_geo.analysis.changes` diffs two states of the map;
:mod:`~cpts_geo.analysis.aci` holds the ACI size classes and funding rules;
:mod:`~cpts_geo.analysis.funding` gives each CPTS the amounts of its class;
:mod:`~cpts_geo.analysis.proposals` proposes candidate CPTS for the gaps (the method:
:mod:`~cpts_geo.analysis.partition`).
"""

from .aci import SIZE_CLASSES, size_class
from .changes import Comparison, compare, coverage_timeline
from .diagnostics import find_gaps, find_overlaps, territory_geometries
from .funding import aci_funding
from .graph import ContiguityGraph
from .inputs import Prepared, filter_territories, prepare
from .proposals import Proposals, propose_territories
from .rates import commune_coverage, coverage, cpts_table

__all__ = [
    "SIZE_CLASSES",
    "Comparison",
    "ContiguityGraph",
    "Prepared",
    "Proposals",
    "aci_funding",
    "commune_coverage",
    "compare",
    "coverage",
    "coverage_timeline",
    "cpts_table",
    "filter_territories",
    "find_gaps",
    "find_overlaps",
    "prepare",
    "propose_territories",
    "size_class",
    "territory_geometries",
]
