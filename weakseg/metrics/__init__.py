from weakseg.metrics.overlap import slice_overlap_scores

__all__ = ["slice_overlap_scores"]
