"""Size-matched fine-tuning: binary cross-entropy to the superlevel set of a reference's logits whose object size
equals the target size (:func:`weakseg.kernels.size_matched_mask`)."""

from __future__ import annotations

import torch
from torch.nn.modules.loss import _Loss

from weakseg.kernels.matching import size_matched_mask
from weakseg.losses.utils import reduce_loss

__all__ = ["SizeMatchedMaskLoss"]


class SizeMatchedMaskLoss(_Loss):
    """
    Size fine-tuning by fitting the network to a prediction corrected to the target size. ``forward(input,
    target)``: ``input`` logits ``a`` ``(B, 1, H, W)``; ``target`` either sizes ``s`` ``(B,)`` / ``(B, 1)``, or a
    pair ``(s, r)`` with reference logits ``r`` ``(B, 1, H, W)``, e.g. a copy of the network frozen at the
    start of the epoch (:py:class:`weakseg.handlers.MeanTeacherHandler` with ``alpha=0, event="epoch"`` and
    :py:class:`weakseg.engines.TeacherBatch`). The loss is ``mask_loss(a, m)`` (default BCE-with-logits,
    eq. 6) against m = :func:`size_matched_mask` ``(r, s)`` (``r = a`` when no reference is given), the
    superlevel set of ``r`` nearest to [r > 0] whose size g (eqs. 3–5) is closest to s. ``m`` is a constant:
    no gradient flows through its choice.

    This is not the paper's estimator (:py:class:`SizeLoss`) but uses the same supervision, one size per image.
    Where the paper's gradient only reaches the few pixels whose flip changes g (so an oversized prediction
    is cut through its thickest part), the matched mask moves the object's boundary in the network's own
    confidence order: its weakest foreground pixels go first. It is a projection of ŷ onto the size
    constraint within the logits' one-parameter family of thresholdings. Plain self-training (m = ŷ) drifts;
    the size constraint is what anchors it. Matching against the network's own current logits (no reference)
    drifts too; a reference refreshed once per epoch does not. Where ŷ already has the target size, m = ŷ and
    the loss is plain self-training on that image, which grows objects; ``only_changed=True`` (the bundle's
    default) gives such images zero loss (see the size benchmark in ``benchmarks/RESULTS.md``).

    Args:
        border_is_background: size rule, see :func:`weakseg.transforms.object_size`.
        mask_loss: per-element loss ``(input, target) -> (B, 1, H, W)``; default
            ``torch.nn.BCEWithLogitsLoss(reduction="none")``.
        only_changed: when True, an image whose matched mask equals the reference prediction [r > 0] (its size is
            already the closest to s that the thresholdings of r reach) contributes zero, so the network is not
            also self-trained on it; the reduction still counts it.
        reduction: "mean" | "sum" | "none" over the batch of per-image mean losses.
    """

    def __init__(
        self,
        border_is_background: bool = True,
        mask_loss: _Loss | None = None,
        reduction: str = "mean",
        only_changed: bool = False,
    ) -> None:
        super().__init__(reduction=reduction)
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.border_is_background = border_is_background
        self.mask_loss = mask_loss if mask_loss is not None else torch.nn.BCEWithLogitsLoss(reduction="none")
        self.only_changed = bool(only_changed)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if input.ndim != 4 or input.shape[1] != 1:
            raise ValueError(f"input must be logits (B, 1, H, W), got shape {tuple(input.shape)}")
        reference = input
        if isinstance(target, (tuple, list)):
            if len(target) != 2:
                raise ValueError("SizeMatchedMaskLoss: target must be sizes or a pair (sizes, reference logits).")
            target, reference = target
            if not isinstance(reference, torch.Tensor) or reference.shape != input.shape:
                got = tuple(reference.shape) if isinstance(reference, torch.Tensor) else type(reference).__name__
                raise ValueError(
                    f"SizeMatchedMaskLoss: reference logits {got} do not match the logits {tuple(input.shape)}"
                )
        t = torch.as_tensor(target, device=input.device).reshape(-1)
        if t.numel() != input.shape[0]:
            raise ValueError(
                f"SizeMatchedMaskLoss: got {t.numel()} size targets for a batch of {input.shape[0]} images; every "
                "slice needs exactly one size (see SizeFromMaskd)."
            )
        reference = reference.detach()
        m = size_matched_mask(reference, t, self.border_is_background)
        per_image = self.mask_loss(input, m.to(input.dtype)).flatten(1).mean(1)
        if self.only_changed:
            changed = (m != (reference > 0)).flatten(1).any(1)
            per_image = per_image * changed.to(per_image.dtype)
        return reduce_loss(per_image, self.reduction)
