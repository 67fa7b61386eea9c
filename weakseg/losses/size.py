"""The size loss of Baručić & Kybic (ITAT 2022): the objective (s − g(y))² (eq. 7) optimised by the sampled-gradient
estimator of :mod:`weakseg.losses.sampled_gradient`, alone or with BCE on annotated masks."""

from __future__ import annotations

import torch
from torch.nn.modules.loss import _Loss

from weakseg.losses.sampled_gradient import SampledGradientLoss
from weakseg.kernels.size import flipped_sizes, object_size, size_flip_candidates

__all__ = ["SizeAndMaskLoss", "SizeLoss", "size_flip_objective", "size_objective"]

def size_objective(y: torch.Tensor, index: torch.Tensor, sizes: torch.Tensor, border_is_background: bool = True):
    """l(s, g(y)) = (s − g(y))² (eq. 7) for samples ``y`` (N, H, W) of images ``index`` with target ``sizes`` (B,)."""
    g = object_size(y, border_is_background).to(sizes.dtype)
    return (sizes[index] - g) ** 2


def size_flip_objective(y: torch.Tensor, index: torch.Tensor, sizes: torch.Tensor, border_is_background: bool = True):
    """``(l(s, g(y)) (N,), l(s, g(y↓i)) (N, H, W))`` for every single flip i (eq. 7 with
    :func:`weakseg.kernels.flipped_sizes`), the same numbers as :func:`size_objective` on each flipped mask."""
    g0, g1 = flipped_sizes(y, border_is_background, return_size=True)
    s = sizes[index]
    return (s - g0.to(sizes.dtype)) ** 2, (s[:, None, None] - g1.to(sizes.dtype)) ** 2


class SizeLoss(SampledGradientLoss):
    """
    Size loss of Baručić & Kybic (2022): E_Y[(s − g(Y))²] (eqs. 7, 11) with g the object size (eqs. 3–5) of the
    stochastic binarisation of the logits, trained with the single-sample flip estimator (eq. 21), with
    g(y↓i) computed exactly for every pixel, never by flipping pixels that cannot change g.

    ``forward(input, target)``: ``input`` logits ``(B, 1, H, W)``, ``target`` sizes ``(B,)`` or ``(B, 1)``
    (non-negative, finite; e.g. from :py:class:`weakseg.transforms.SizeFromMaskd`). Returns the Monte-Carlo
    estimate of the expected squared size error (mean over the batch by default).

    Args:
        num_samples: n samples per image (eq. 21 averaged); paper n = 1.
        border_is_background: size rule, see :func:`weakseg.transforms.object_size`.
        flips: how g(y↓i) is obtained; all give the same estimate exactly.
            ``"closed_form"``: for every pixel at once (:func:`weakseg.kernels.flipped_sizes`), a fixed
            sequence of batched operations without host synchronisation, the choice for GPUs;
            ``"pruned"``: only the flips that can change g (:func:`weakseg.kernels.size_flip_candidates`),
            measured on the flipped masks, the faster choice on CPUs; ``"all"``: every flip measured (brute
            force, for reference); ``"auto"`` (default): closed form on GPUs, pruned on CPUs.
        noise_scale: scale τ of the logistic noise (P(Y_i = +1) = σ(a_i / τ)); paper τ = 1. See
            :py:class:`SampledGradientLoss`.
    """

    def __init__(
        self,
        num_samples: int = 1,
        border_is_background: bool = True,
        reduction: str = "mean",
        generator: torch.Generator | None = None,
        noise_scale: float = 1.0,
        flips: str = "auto",
    ) -> None:
        if flips not in ("auto", "closed_form", "pruned", "all"):
            raise ValueError(f"flips must be 'auto', 'closed_form', 'pruned' or 'all', got {flips!r}")
        self.border_is_background = border_is_background
        self.flips = flips

        def objective(y, index, sizes):
            return size_objective(y, index, sizes, border_is_background)

        def candidates(y):
            return size_flip_candidates(y, border_is_background)

        def flip_objective(y, index, sizes):
            return size_flip_objective(y, index, sizes, border_is_background)

        super().__init__(objective, num_samples, candidates, reduction, generator, noise_scale, flip_objective)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self._check_input(input)
        t = torch.as_tensor(target, device=input.device).reshape(-1).to(torch.float64)
        if t.numel() != input.shape[0]:
            raise ValueError(
                f"SizeLoss: got {t.numel()} size targets for a batch of {input.shape[0]} images; every slice "
                "needs exactly one size (see SizeFromMaskd)."
            )
        if not bool((torch.isfinite(t) & (t >= 0)).all()):  # the one read-back of a step
            raise ValueError(f"SizeLoss: size targets must be finite and >= 0, got {t.tolist()}")
        mode = self.flips if self.flips != "auto" else ("pruned" if input.device.type == "cpu" else "closed_form")
        if mode == "closed_form":
            return self._estimate(input, t, None, self.flip_objective)
        return self._estimate(input, t, self.candidates if mode == "pruned" else None, None)


class SizeAndMaskLoss(_Loss):
    """
    Size fine-tuning that keeps the pixel masks it has: the size loss (eqs. 7, 11, trained with eq. 21) on every
    image, plus ``supervised_weight`` times a mask loss (default BCE-with-logits, eq. 6) on the images that carry
    a mask. The paper's weak stage is ``supervised_weight = 0`` (sizes only).

    ``forward(input, target)``: ``input`` logits ``(B, 1, H, W)``; ``target`` a sequence
    ``(sizes (B,), masks (B, 1, H, W), annotated (B,))`` where ``annotated`` is 1 for images whose mask is real
    and 0 for images whose mask is a placeholder (see :func:`weakseg.data.mark_annotated`). The mask term is
    the mean over the annotated images of the batch, and 0 for a batch without one.

    Args:
        size_loss: the :py:class:`SizeLoss` (or any ``SampledGradientLoss`` taking sizes).
        supervised_weight: weight λ ≥ 0 of the mask term.
        mask_loss: per-element loss ``(input, target) -> (B, 1, H, W)``; default
            ``torch.nn.BCEWithLogitsLoss(reduction="none")``.
    """

    def __init__(self, size_loss: _Loss, supervised_weight: float = 1.0, mask_loss: _Loss | None = None) -> None:
        super().__init__()
        w = float(supervised_weight)
        if not (w >= 0 and w < float("inf")):
            raise ValueError(f"supervised_weight must be a finite number >= 0, got {supervised_weight}")
        self.size_loss = size_loss
        self.supervised_weight = w
        self.mask_loss = mask_loss if mask_loss is not None else torch.nn.BCEWithLogitsLoss(reduction="none")

    def forward(self, input: torch.Tensor, target) -> torch.Tensor:
        if not isinstance(target, (tuple, list)) or len(target) != 3:
            raise ValueError(
                "SizeAndMaskLoss: target must be (sizes, masks, annotated), e.g. from "
                "PrepareBatchKeys('image', ['size', 'label', 'annotated'])."
            )
        sizes, masks, annotated = target
        if masks.shape != input.shape:
            raise ValueError(f"SizeAndMaskLoss: masks {tuple(masks.shape)} do not match the logits {tuple(input.shape)}")
        ann = torch.as_tensor(annotated, device=input.device).reshape(-1) > 0
        if ann.numel() != input.shape[0]:
            raise ValueError(f"SizeAndMaskLoss: {ann.numel()} annotated flags for a batch of {input.shape[0]} images")
        loss = self.size_loss(input, sizes)
        if self.supervised_weight > 0:
            per_image = self.mask_loss(input, masks.to(input.dtype)).flatten(1).mean(1)
            # mean over the annotated images; 0 (with a graph) when the batch has none
            loss = loss + self.supervised_weight * (per_image * ann).sum() / ann.sum().clamp(min=1)
        return loss


