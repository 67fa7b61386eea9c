from weakseg.transforms.labels import CheckFinite, CheckFinited, MergeLabels, MergeLabelsd
from weakseg.transforms.slicing import SliceVolume, SliceVolumed, source_name

__all__ = [
    "CheckFinite",
    "CheckFinited",
    "MergeLabels",
    "MergeLabelsd",
    "SliceVolume",
    "SliceVolumed",
    "source_name",
]
