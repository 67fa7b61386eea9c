from weakseg.losses.size import SampledGradientLoss, SizeLoss, flip_gradient_estimate, size_objective

__all__ = ["SampledGradientLoss", "SizeLoss", "flip_gradient_estimate", "size_objective"]
