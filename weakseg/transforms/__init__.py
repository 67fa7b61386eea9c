from weakseg.transforms.weak import (
    ANNOTATION_TYPES,
    BoxFromMask,
    BoxFromMaskd,
    ImageLabels,
    MixedSupervisiond,
    WeakAnnotationd,
    WeakSliced,
    annotation_code,
    assign_annotations,
    box_to_mask,
)
from weakseg.transforms.contour import MaskCentroid, MaskCentroidd, mask_centroid, polygon_to_mask
from weakseg.transforms.distance import SignedDistanceMap, SignedDistanceMapd, signed_distance_map
from weakseg.transforms.labels import (
    BinaryMask,
    BinaryMaskd,
    CheckChannels,
    CheckChannelsd,
    CheckFinite,
    CheckFinited,
    MergeLabels,
    MergeLabelsd,
)
from weakseg.transforms.pick import RandPickd
from weakseg.transforms.size import (
    SizeFromMask,
    SizeFromMaskd,
    flipped_sizes,
    max_chebyshev_distance,
    object_size,
    size_flip_candidates,
)
from weakseg.transforms.slicing import SliceVolume, SliceVolumed, source_name

__all__ = [
    "ANNOTATION_TYPES",
    "BoxFromMask",
    "BoxFromMaskd",
    "ImageLabels",
    "WeakAnnotationd",
    "WeakSliced",
    "MixedSupervisiond",
    "annotation_code",
    "assign_annotations",
    "box_to_mask",

    "MaskCentroid",
    "MaskCentroidd",
    "mask_centroid",
    "polygon_to_mask",
    "BinaryMask",
    "BinaryMaskd",
    "RandPickd",
    "SignedDistanceMap",
    "SignedDistanceMapd",
    "signed_distance_map",
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
    "flipped_sizes",
    "max_chebyshev_distance",
    "object_size",
    "size_flip_candidates",
    "source_name",
]
