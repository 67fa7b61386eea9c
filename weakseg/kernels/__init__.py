"""Exact, batched algorithms on masks and contours that transforms, losses, networks and metrics share: object
size and its one-pixel flips, size-matched masks, polygon filling and centroids, the star pattern and the contour
dynamic programme."""

from weakseg.kernels.contour import StarPattern, dp_contour, smooth_indices
from weakseg.kernels.matching import size_matched_mask
from weakseg.kernels.polygon import mask_centroid, polygon_to_mask
from weakseg.kernels.size import NO_BACKGROUND, flipped_sizes, max_chebyshev_distance, object_size, size_flip_candidates

__all__ = [
    "NO_BACKGROUND",
    "StarPattern",
    "dp_contour",
    "flipped_sizes",
    "mask_centroid",
    "max_chebyshev_distance",
    "object_size",
    "polygon_to_mask",
    "size_flip_candidates",
    "size_matched_mask",
    "smooth_indices",
]
