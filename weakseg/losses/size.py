"""
Learning from object sizes with a sampled-gradient estimator (Baručić & Kybic, ITAT 2022).

Network response a = f_θ(x) (logits). Stochastic binarisation Y_i = sign(a_i − Z_i), Z logistic, so
P(Y_i = +1) = σ(a_i) = F_Z(a_i) (eqs. 8–11). The objective is E_Y[h(Y)], e.g. h(y) = l(s, g(y)) = (s − g(y))²
(eq. 7) with g the object size (eqs. 3–5). Its exact derivative w.r.t. p_i = F_Z(a_i) is
E_{Y−i}[h(y | y_i=+1) − h(y | y_i=−1)], estimated from one sample y by (eq. 21)

    ∂E/∂F_Z(a_i) ≈ y_i · [h(y) − h(y↓i)]            (y_i ∈ {−1, +1}, y↓i: y with pixel i flipped)

which is unbiased because the bracket does not depend on y_i. It is chained through σ'(a_i) = p_i(1 − p_i)
to a_i and averaged over ``num_samples`` samples. For the size objective h(y↓i) is known for every pixel in
closed form (:func:`weakseg.transforms.flipped_sizes`: a fixed sequence of batched operations that never
synchronises a GPU with the host). Alternatively, pixels whose flip cannot change h get exactly zero without
evaluating h(y↓i) (:func:`weakseg.transforms.size_flip_candidates`) and the remaining flips are evaluated in
one batched pass, the faster choice on CPUs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn.modules.loss import _Loss

from weakseg.losses.utils import reduce_loss
from weakseg.transforms.size import flipped_sizes, object_size, size_flip_candidates

__all__ = [
    "flip_gradient_estimate",
    "SampledGradientLoss",
    "SizeAndMaskLoss",
    "SizeLoss",
    "size_objective",
    "size_flip_objective",
    "size_matched_mask",
    "SizeMatchedMaskLoss",
]

Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""h(y, index) -> values: ``y`` (N, H, W) bool samples, ``index`` (N,) the batch element of each sample."""
FlipObjective = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""(y, index) -> (h(y) (N,), h(y↓i) for every pixel i (N, H, W))."""


@torch.no_grad()
def flip_gradient_estimate(
    probs: torch.Tensor,
    objective: Objective,
    num_samples: int = 1,
    candidates: Callable[[torch.Tensor], torch.Tensor] | None = None,
    generator: torch.Generator | None = None,
    chunk_size: int = 16384,
    flip_objective: FlipObjective | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Sample ``num_samples`` binary masks per image from ``probs`` ``(B, H, W)`` (P(y_i = 1) = p_i) and return
    ``(values, grad)``: ``values`` ``(B,)`` the mean of h over the samples (a Monte-Carlo estimate of E[h(Y)]),
    ``grad`` ``(B, H, W)`` the mean of the single-sample estimator y_i·[h(y) − h(y↓i)] of ∂E/∂p_i (eq. 21).

    ``flip_objective(y, index) -> (h(y), h(y↓i) for all i)`` gives every flip at once (then ``objective`` and
    ``candidates`` are not used). Otherwise ``candidates(y) -> (N, H, W) bool`` names the pixels whose flip
    may change h (the others get exactly 0) and ``objective`` is evaluated on those flipped samples; ``None``
    flips every pixel (brute force).
    """
    if probs.ndim != 3:
        raise ValueError(f"probs must be (B, H, W), got {tuple(probs.shape)}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    b, h, w = probs.shape
    p = probs.repeat_interleave(num_samples, dim=0)  # (N, H, W), samples of image k are k*n ... k*n+n-1
    index = torch.arange(b, device=probs.device).repeat_interleave(num_samples)
    u = torch.rand(p.shape, generator=generator, device=p.device, dtype=p.dtype)
    y = u < p
    if flip_objective is not None:
        h0, h1 = flip_objective(y, index)
        h0 = h0.to(torch.float64)
        grad = torch.where(y, 1.0, -1.0).to(torch.float64) * (h0[:, None, None] - h1.to(torch.float64))
        values = h0.view(b, num_samples).mean(1)
        return values.to(probs.dtype), grad.view(b, num_samples, h, w).mean(1).to(probs.dtype)
    h0 = objective(y, index).to(torch.float64)  # (N,)
    cand = candidates(y) if candidates is not None else torch.ones_like(y)
    n_idx, r_idx, c_idx = torch.nonzero(cand, as_tuple=True)
    grad = torch.zeros(y.shape, dtype=torch.float64, device=y.device)
    for s in range(0, n_idx.numel(), chunk_size):
        nn, rr, cc = n_idx[s : s + chunk_size], r_idx[s : s + chunk_size], c_idx[s : s + chunk_size]
        flipped = y[nn]
        k = torch.arange(nn.numel(), device=y.device)
        flipped[k, rr, cc] = ~flipped[k, rr, cc]
        h1 = objective(flipped, index[nn]).to(torch.float64)
        sign = torch.where(y[nn, rr, cc], 1.0, -1.0).to(torch.float64)
        grad[nn, rr, cc] = sign * (h0[nn] - h1)
    values = h0.view(b, num_samples).mean(1)
    return values.to(probs.dtype), grad.view(b, num_samples, h, w).mean(1).to(probs.dtype)


class _SampledGradient(torch.autograd.Function):
    """Forward: Monte-Carlo value of E[h(Y)] per image; backward: the eq. 21 estimator chained through σ'."""

    @staticmethod
    def forward(ctx, logits, objective, num_samples, candidates, generator, noise_scale=1.0, flip_objective=None):  # type: ignore[override]
        probs = torch.sigmoid(logits.detach() / noise_scale)
        values, grad_p = flip_gradient_estimate(
            probs, objective, num_samples, candidates, generator, flip_objective=flip_objective
        )
        ctx.save_for_backward(grad_p * probs * (1 - probs) / noise_scale)  # dp/da = σ'(a/τ)/τ = p(1 - p)/τ
        return values

    @staticmethod
    def backward(ctx, grad_values):  # type: ignore[override]
        (grad_a,) = ctx.saved_tensors
        return grad_values.view(-1, 1, 1) * grad_a, None, None, None, None, None, None


class SampledGradientLoss(_Loss):
    """
    E_Y[h(Y)] for a non-differentiable objective ``h`` of a binary mask, trained with the sampled-gradient
    estimator of eq. 21. ``input``: logits ``(B, 1, H, W)``; ``target``: anything ``objective`` needs, passed as
    ``objective(y, index, target)``.

    Args:
        objective: ``h(y, index, target) -> (N,)`` for samples ``y`` (N, H, W) bool of batch elements ``index``.
        num_samples: samples per image n (paper: 1; 1, 2, 4, 8 studied).
        candidates: optional ``(y) -> (N, H, W) bool`` exact set of pixels whose flip may change h.
        flip_objective: optional ``(y, index, target) -> (h(y) (N,), h(y↓i) (N, H, W))``, every single flip at
            once; when given, ``objective`` and ``candidates`` are not used.
        reduction: "mean" | "sum" | "none" over the batch.
        noise_scale: scale τ of the logistic noise, Y_i = sign(a_i − τZ_i), so P(Y_i = +1) = σ(a_i / τ).
            The paper's eqs. 8–11 are τ = 1. The binarisation sign(a) used for prediction does not depend on τ;
            τ < 1 samples closer to it, for networks whose logits cannot grow large (see the size
            benchmark in ``benchmarks/RESULTS.md``).
    """

    def __init__(
        self,
        objective: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
        num_samples: int = 1,
        candidates: Callable[[torch.Tensor], torch.Tensor] | None = None,
        reduction: str = "mean",
        generator: torch.Generator | None = None,
        noise_scale: float = 1.0,
        flip_objective: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple] | None = None,
    ) -> None:
        super().__init__(reduction=reduction)
        if int(num_samples) < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if not (float(noise_scale) > 0 and float(noise_scale) < float("inf")):
            raise ValueError(f"noise_scale must be a finite number > 0, got {noise_scale}")
        self.noise_scale = float(noise_scale)
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.objective = objective
        self.num_samples = int(num_samples)
        self.candidates = candidates
        self.flip_objective = flip_objective
        self.generator = generator

    def _check_input(self, input: torch.Tensor) -> None:
        if input.ndim != 4 or input.shape[1] != 1:
            raise ValueError(f"input must be logits (B, 1, H, W), got shape {tuple(input.shape)}")

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self._check_input(input)
        return self._estimate(input, target, self.candidates, self.flip_objective)

    def _estimate(self, input, target, candidates, flip_objective) -> torch.Tensor:
        def h(y, index):
            return self.objective(y, index, target)

        def h_flips(y, index):
            return flip_objective(y, index, target)

        values = _SampledGradient.apply(
            input[:, 0], h, self.num_samples, candidates, self.generator, self.noise_scale,
            h_flips if flip_objective is not None else None,
        )
        return reduce_loss(values, self.reduction)


def size_objective(y: torch.Tensor, index: torch.Tensor, sizes: torch.Tensor, border_is_background: bool = True):
    """l(s, g(y)) = (s − g(y))² (eq. 7) for samples ``y`` (N, H, W) of images ``index`` with target ``sizes`` (B,)."""
    g = object_size(y, border_is_background).to(sizes.dtype)
    return (sizes[index] - g) ** 2


def size_flip_objective(y: torch.Tensor, index: torch.Tensor, sizes: torch.Tensor, border_is_background: bool = True):
    """``(l(s, g(y)) (N,), l(s, g(y↓i)) (N, H, W))`` for every single flip i (eq. 7 with
    :func:`weakseg.transforms.flipped_sizes`), the same numbers as :func:`size_objective` on each flipped mask."""
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
            ``"closed_form"``: for every pixel at once (:func:`weakseg.transforms.flipped_sizes`), a fixed
            sequence of batched operations without host synchronisation, the choice for GPUs;
            ``"pruned"``: only the flips that can change g (:func:`weakseg.transforms.size_flip_candidates`),
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


def _size_of_top(rank: torch.Tensor, k: torch.Tensor, border_is_background: bool) -> torch.Tensor:
    """g of the masks made of the ``k`` (N,) highest-ranked pixels; a mask without background (only possible
    with ``border_is_background=False``) counts as larger than any finite size."""
    g = object_size(rank < k[:, None, None], border_is_background)
    return torch.where(g < 0, torch.iinfo(g.dtype).max, g)


def _first_above(rank, value, border_is_background, strict: bool) -> torch.Tensor:
    """Per mask, the smallest k in [0, P] with g(top k) > value (``strict``) or >= value, else P + 1.
    g(top k) does not decrease with k (adding foreground never shortens a distance to the background), so a
    bisection over k is exact."""
    n = rank.shape[0]
    p = rank.shape[1] * rank.shape[2]
    lo = torch.zeros(n, dtype=torch.long, device=rank.device)
    hi = torch.full((n,), p + 1, dtype=torch.long, device=rank.device)
    while bool((lo < hi).any()):
        mid = (lo + hi) // 2  # <= P + 1: the top P + 1 pixels are all of them
        g = _size_of_top(rank, mid, border_is_background)
        hit = (g > value) if strict else (g >= value)
        active = lo < hi
        hi = torch.where(active & hit, mid, hi)
        lo = torch.where(active & ~hit, mid + 1, lo)
    return lo


@torch.no_grad()
def size_matched_mask(logits: torch.Tensor, sizes: torch.Tensor, border_is_background: bool = True) -> torch.Tensor:
    """
    The mask nearest to the prediction ŷ = [a > 0] among the superlevel sets of the logits whose object size
    (eqs. 3–5) is closest to the target: for logits ``(B, 1, H, W)`` or ``(B, H, W)`` and sizes ``(B,)``,
    returns bool masks of the logits' shape.

    The candidates are the masks T_k of the k highest logits, k = 0 … H·W (ties in rank order), so T_{k0} = ŷ
    with k0 = #{a > 0}. g(T_k) does not decrease with k. The result is T_k with k minimising (s − g(T_k))²
    (eq. 7) and, among those, |k − k0| (the fewest pixels changed from ŷ). When ŷ already has the target size
    it is returned unchanged; otherwise the prediction's weakest foreground pixels are dropped, or its strongest
    background pixels added, in the network's own order, until the size matches. Exact: every k is reachable
    and the four bisections over k rely only on the monotonicity of g.
    """
    if logits.ndim == 4:
        if logits.shape[1] != 1:
            raise ValueError(f"logits must be (B, 1, H, W) or (B, H, W), got shape {tuple(logits.shape)}")
        return size_matched_mask(logits[:, 0], sizes, border_is_background)[:, None]
    if logits.ndim != 3:
        raise ValueError(f"logits must be (B, 1, H, W) or (B, H, W), got shape {tuple(logits.shape)}")
    n, h, w = logits.shape
    s = torch.as_tensor(sizes, device=logits.device).reshape(-1).to(torch.float64)
    if s.numel() != n:
        raise ValueError(f"size_matched_mask: got {s.numel()} sizes for {n} masks; every mask needs one size")
    if not bool((torch.isfinite(s) & (s >= 0)).all()):
        raise ValueError(f"size_matched_mask: sizes must be finite and >= 0, got {s.tolist()}")
    flat = logits.detach().reshape(n, -1)
    order = torch.argsort(flat, dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(h * w, device=logits.device).expand(n, -1).contiguous())
    rank = rank.view(n, h, w)
    p = h * w
    k0 = (flat > 0).sum(1)
    # k_hi: the last k with g <= s (g(T_0) = 0 <= s, so it exists); its size v1 and the next size v2 > s
    k_hi = _first_above(rank, s, border_is_background, strict=True) - 1
    v1 = _size_of_top(rank, k_hi, border_is_background).to(torch.float64)
    has_next = k_hi < p
    v2 = _size_of_top(rank, k_hi + 1, border_is_background).to(torch.float64)  # k_hi = P: all pixels again
    lo1 = _first_above(rank, v1, border_is_background, strict=False)  # first k with g == v1
    hi2 = _first_above(rank, v2, border_is_background, strict=True) - 1  # last k with g == v2
    k1 = torch.minimum(torch.maximum(k0, lo1), k_hi)
    k2 = torch.minimum(torch.maximum(k0, k_hi + 1), hi2)
    e1, e2 = (s - v1) ** 2, torch.where(has_next, (s - v2) ** 2, torch.inf)
    take2 = (e2 < e1) | ((e2 == e1) & ((k2 - k0).abs() < (k1 - k0).abs()))
    k = torch.where(take2, k2, k1)
    return rank < k[:, None, None]


class SizeMatchedMaskLoss(_Loss):
    """
    Size fine-tuning by fitting the network to a prediction corrected to the target size. ``forward(input,
    target)``: ``input`` logits ``a`` ``(B, 1, H, W)``; ``target`` either sizes ``s`` ``(B,)`` / ``(B, 1)``, or a
    pair ``(s, r)`` with reference logits ``r`` ``(B, 1, H, W)``, e.g. a copy of the network frozen at the
    start of the epoch (:py:class:`weakseg.engines.MeanTeacherHandler` with ``alpha=0, event="epoch"`` and
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
