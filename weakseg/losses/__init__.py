from weakseg.losses.deep_supervision import ConsistencyLoss, MultiLabelDeepSupervisionLoss, multilabel_targets
from weakseg.losses.boundary import DistanceMapBoundaryLoss
from weakseg.losses.combined import SCHEDULES, AlphaSchedule, CombinedLoss, make_loss
from weakseg.losses.lovasz import LovaszHingeLoss, LovaszSoftmaxLoss, lovasz_grad
from weakseg.kernels.matching import size_matched_mask
from weakseg.losses.sampled_gradient import SampledGradientLoss, flip_gradient_estimate
from weakseg.losses.size import SizeAndMaskLoss, SizeLoss, size_flip_objective, size_objective
from weakseg.losses.size_matched import SizeMatchedMaskLoss
from weakseg.losses.size_constraints import SizeBoundsLoss, SoftSizeLoss, max_area_ratio, size_bounds, soft_object_size
from weakseg.losses.tversky import FocalTverskyLoss

__all__ = [
    "ConsistencyLoss",
    "MultiLabelDeepSupervisionLoss",
    "multilabel_targets",

    "SCHEDULES",
    "AlphaSchedule",
    "CombinedLoss",
    "DistanceMapBoundaryLoss",
    "FocalTverskyLoss",
    "LovaszHingeLoss",
    "LovaszSoftmaxLoss",
    "SampledGradientLoss",
    "SizeAndMaskLoss",
    "SizeBoundsLoss",
    "SizeLoss",
    "SizeMatchedMaskLoss",
    "SoftSizeLoss",
    "flip_gradient_estimate",
    "lovasz_grad",
    "make_loss",
    "max_area_ratio",
    "size_flip_objective",
    "size_bounds",
    "size_matched_mask",
    "size_objective",
    "soft_object_size",
]
