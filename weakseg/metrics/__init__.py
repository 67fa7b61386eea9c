from weakseg.metrics.topology import (
    BettiError,
    BettiErrorMetric,
    ClDice,
    ClDiceMetric,
    betti_numbers,
    cl_dice,
    skeleton,
)
from weakseg.metrics.distance import SpacedDistance, contour_scores
from weakseg.metrics.hausdorff import (
    AverageHausdorffDistance,
    AverageHausdorffDistanceMetric,
    average_hausdorff_distance,
)
from weakseg.metrics.overlap import slice_overlap_scores
from weakseg.metrics.pixel import pixel_scores
from weakseg.metrics.size import SizeError, SizeErrorMetric

__all__ = [
    "BettiError",
    "BettiErrorMetric",
    "ClDice",
    "ClDiceMetric",
    "betti_numbers",
    "cl_dice",
    "skeleton",

    "SpacedDistance",
    "contour_scores",
    "AverageHausdorffDistance",
    "AverageHausdorffDistanceMetric",
    "SizeError",
    "SizeErrorMetric",
    "average_hausdorff_distance",
    "pixel_scores",
    "slice_overlap_scores",
]
