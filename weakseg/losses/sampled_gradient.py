"""
Learning from object sizes with a sampled-gradient estimator (Baručić & Kybic, ITAT 2022).

Network response a = f_θ(x) (logits). Stochastic binarisation Y_i = sign(a_i − Z_i), Z logistic, so
P(Y_i = +1) = σ(a_i) = F_Z(a_i) (eqs. 8–11). The objective is E_Y[h(Y)], e.g. h(y) = l(s, g(y)) = (s − g(y))²
(eq. 7) with g the object size (eqs. 3–5). Its exact derivative w.r.t. p_i = F_Z(a_i) is
E_{Y−i}[h(y | y_i=+1) − h(y | y_i=−1)], estimated from one sample y by (eq. 21)

    ∂E/∂F_Z(a_i) ≈ y_i · [h(y) − h(y↓i)]            (y_i ∈ {−1, +1}, y↓i: y with pixel i flipped)

which is unbiased because the bracket does not depend on y_i. It is chained through σ'(a_i) = p_i(1 − p_i)
to a_i and averaged over ``num_samples`` samples. For the size objective h(y↓i) is known for every pixel in
closed form (:func:`weakseg.kernels.flipped_sizes`: a fixed sequence of batched operations that never
synchronises a GPU with the host). Alternatively, pixels whose flip cannot change h get exactly zero without
evaluating h(y↓i) (:func:`weakseg.kernels.size_flip_candidates`) and the remaining flips are evaluated in
one batched pass, the faster choice on CPUs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn.modules.loss import _Loss

from weakseg.losses.utils import reduce_loss

__all__ = ["FlipObjective", "Objective", "SampledGradientLoss", "flip_gradient_estimate"]

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
