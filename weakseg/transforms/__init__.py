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
from weakseg.kernels.polygon import mask_centroid, polygon_to_mask
from weakseg.transforms.contour import MaskCentroid, MaskCentroidd
from weakseg.transforms.distance import SignedDistanceMap, SignedDistanceMapd, signed_distance_map
from weakseg.transforms.labels import (
    BinaryMask,
    BinaryMaskd,
    CheckChannels,
    CheckChannelsd,
    CheckFinite,
    CheckFinited,
    CheckSameShape,
    CheckSameShaped,
    MergeLabels,
    MergeLabelsd,
)
from weakseg.transforms.pick import RandPickd
from weakseg.kernels.size import flipped_sizes, max_chebyshev_distance, object_size, size_flip_candidates
from weakseg.transforms.size import SizeFromMask, SizeFromMaskd
from weakseg.transforms.slicing import SliceVolume, SliceVolumed, source_name

# MONAI-style aliases of the dictionary transforms (XD = XDict = Xd)
from weakseg.transforms.contour import MaskCentroidD, MaskCentroidDict  # noqa: E402
from weakseg.transforms.distance import SignedDistanceMapD, SignedDistanceMapDict  # noqa: E402
from weakseg.transforms.labels import (  # noqa: E402
    MergeLabelsD,
    MergeLabelsDict,
    BinaryMaskD,
    BinaryMaskDict,
    CheckFiniteD,
    CheckFiniteDict,
    CheckChannelsD,
    CheckChannelsDict,
    CheckSameShapeD,
    CheckSameShapeDict,
)
from weakseg.transforms.pick import RandPickD, RandPickDict  # noqa: E402
from weakseg.transforms.size import SizeFromMaskD, SizeFromMaskDict  # noqa: E402
from weakseg.transforms.slicing import SliceVolumeD, SliceVolumeDict  # noqa: E402
from weakseg.transforms.weak import (  # noqa: E402
    BoxFromMaskD,
    BoxFromMaskDict,
    WeakAnnotationD,
    WeakAnnotationDict,
    WeakSliceD,
    WeakSliceDict,
    MixedSupervisionD,
    MixedSupervisionDict,
)

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
    "CheckSameShape",
    "CheckSameShaped",
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
    "MaskCentroidD",
    "MaskCentroidDict",
    "SignedDistanceMapD",
    "SignedDistanceMapDict",
    "MergeLabelsD",
    "MergeLabelsDict",
    "BinaryMaskD",
    "BinaryMaskDict",
    "CheckFiniteD",
    "CheckFiniteDict",
    "CheckChannelsD",
    "CheckChannelsDict",
    "CheckSameShapeD",
    "CheckSameShapeDict",
    "RandPickD",
    "RandPickDict",
    "SizeFromMaskD",
    "SizeFromMaskDict",
    "SliceVolumeD",
    "SliceVolumeDict",
    "BoxFromMaskD",
    "BoxFromMaskDict",
    "WeakAnnotationD",
    "WeakAnnotationDict",
    "WeakSliceD",
    "WeakSliceDict",
    "MixedSupervisionD",
    "MixedSupervisionDict",
]
