"""Size-matched masks: the superlevel set of a network's logits whose object size equals a target size."""

from __future__ import annotations

import torch

from weakseg.kernels.size import object_size

__all__ = ["size_matched_mask"]


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
