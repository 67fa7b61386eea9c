from weakseg.metrics.overlap import slice_overlap_scores
from weakseg.metrics.size import SizeError, SizeErrorMetric

__all__ = ["SizeError", "SizeErrorMetric", "slice_overlap_scores"]
