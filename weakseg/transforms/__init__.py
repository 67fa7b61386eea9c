from weakseg.transforms.labels import (
    CheckChannels,
    CheckChannelsd,
    CheckFinite,
    CheckFinited,
    MergeLabels,
    MergeLabelsd,
)
from weakseg.transforms.size import (
    SizeFromMask,
    SizeFromMaskd,
    max_chebyshev_distance,
    object_size,
    size_flip_candidates,
)
from weakseg.transforms.slicing import SliceVolume, SliceVolumed, source_name

__all__ = [
    "CheckChannels",
    "CheckChannelsd",
    "CheckFinite",
    "CheckFinited",
    "MergeLabels",
    "MergeLabelsd",
    "SizeFromMask",
    "SizeFromMaskd",
    "SliceVolume",
    "SliceVolumed",
    "max_chebyshev_distance",
    "object_size",
    "size_flip_candidates",
    "source_name",
]
