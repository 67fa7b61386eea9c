"""
Object size of binary masks and of all their one-pixel flips (Baručić & Kybic, "Learning to segment from object sizes", ITAT 2022).

The size of a mask y is g(y) = 2 · max_i d_i (eqs. 3–5), d_i the Chebyshev (chessboard, L∞) distance from
foreground pixel i to the nearest background pixel. A single pixel has size 2, a 3×3 square size 4.

Algorithm (exact, batched, any device). d_i ≥ k iff the (2k−1)×(2k−1) square centred at i is all foreground,
so max_i d_i follows from the classic largest-all-foreground-square dynamic programme
S[r, c] = min(S[r−1, c], S[r−1, c−1], S[r, c−1]) + 1 on foreground. Each row is solved at once, for all masks
and columns, as a min-plus scan: S[r, c] = min_{l ≤ c}(A[l] − l) + c with A[l] = min(S[r−1, l−1], S[r−1, l]) + 1
on foreground and 0 on background (a cumulative minimum), so the work is H vectorised steps of O(N·W).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import NdarrayOrTensor

__all__ = ["NO_BACKGROUND", "flipped_sizes", "max_chebyshev_distance", "object_size", "size_flip_candidates"]

NO_BACKGROUND = -1
"""Returned by :func:`max_chebyshev_distance` (and as size) for a mask without background pixels when
``border_is_background=False``: the distance is undefined there (scipy's ``distance_transform_cdt`` gives -1)."""


def _as_bool_masks(masks: NdarrayOrTensor) -> torch.Tensor:
    m = torch.as_tensor(masks) if not isinstance(masks, torch.Tensor) else masks
    if m.ndim < 2:
        raise ValueError(f"object_size expects masks (..., H, W), got shape {tuple(m.shape)}")
    if m.dtype == torch.bool:
        return m
    return m > 0  # 0/1, ±1 and probabilities > 0 all map to foreground where positive


class _Ops:
    """The few array operations the algorithms need, on numpy (CPU, much faster for these small scans and
    cumulative sums) or on torch (any other device)."""

    def __init__(self, device: torch.device, backend: str = "auto") -> None:
        if backend not in ("auto", "numpy", "torch"):
            raise ValueError(f"backend must be 'auto', 'numpy', 'torch' or 'erosion', got {backend!r}")
        if backend == "numpy" and device.type != "cpu":
            raise ValueError("backend='numpy' needs CPU tensors")
        self.np = backend == "numpy" or (backend == "auto" and device.type == "cpu")
        self.device = device
        self.xp = np if self.np else torch

    def asarray(self, t: torch.Tensor):
        return t.numpy() if self.np else t

    def to_torch(self, a) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)) if self.np else a

    def arange(self, n: int, dtype=None):
        if self.np:
            return np.arange(n, dtype=dtype or np.int64)
        return torch.arange(n, device=self.device, dtype=dtype or torch.int64)

    def int16(self):
        return np.int16 if self.np else torch.int16

    def astype(self, a, kind: str):
        dt = {"i16": (np.int16, torch.int16), "i32": (np.int32, torch.int32), "i64": (np.int64, torch.int64)}[kind]
        return a.astype(dt[0]) if self.np else a.to(dt[1])

    def cummin(self, a, axis: int):
        return np.minimum.accumulate(a, axis=axis) if self.np else torch.cummin(a, dim=axis).values

    def amax(self, a, axis):
        return a.max(axis=axis) if self.np else a.amax(dim=axis)

    def amin(self, a, axis):
        return a.min(axis=axis) if self.np else a.amin(dim=axis)

    def clamp_min(self, a, v):
        return np.maximum(a, v) if self.np else a.clamp_min(v)

    def pad(self, a, p: int, value):
        if self.np:
            return np.pad(a, ((0, 0), (p, p), (p, p)), constant_values=value)
        return F.pad(a, (p, p, p, p), value=value)

    def empty(self, shape, kind: str = "i16"):
        if self.np:
            return np.empty(shape, dtype={"i16": np.int16}[kind])
        return torch.empty(shape, dtype={"i16": torch.int16}[kind], device=self.device)

    def zeros(self, shape):
        return np.zeros(shape, dtype=np.int16) if self.np else torch.zeros(shape, dtype=torch.int16, device=self.device)

    def contiguous_rows(self, m):
        """(N, H, W) -> (H, N, W) contiguous int16."""
        if self.np:
            return np.ascontiguousarray(m.transpose(1, 0, 2)).astype(np.int16)
        return m.permute(1, 0, 2).contiguous().to(torch.int16)

    def transpose12(self, a):
        return a.transpose(0, 2, 1) if self.np else a.transpose(1, 2)

    def rows_back(self, S):
        return np.ascontiguousarray(S.transpose(1, 0, 2)) if self.np else S.permute(1, 0, 2).contiguous()


def _square_dp(m, pad: int, need_maps: bool, ops: _Ops):
    """
    Largest-square DP on masks ``m`` (N, H, W) bool (numpy or torch per ``ops``), optionally padded with ``pad``
    foreground pixels (the outside-ignored rule). Returns ``(S, K)``: ``S`` (N, H+2p, W+2p) the side of the
    largest all-foreground square ending at each position; ``K`` the largest half-size k such that the
    (2k−1)-square ending there is centred on an image pixel (that pixel then has d ≥ k). With
    ``need_maps=False`` returns ``(None, max K per mask)``.

    The scan runs over the shorter image axis (the DP is symmetric under transposition).
    """
    n, h, w = m.shape
    if h > w:
        S, K = _square_dp(ops.transpose12(m), pad, need_maps, ops)
        return (ops.transpose12(S), ops.transpose12(K)) if need_maps else (None, K)
    if pad:
        m = ops.pad(ops.astype(m, "i16"), pad, 1)
    mt = ops.contiguous_rows(m)  # (Hp, N, Wp)
    cols = ops.arange(mt.shape[2], ops.int16())
    prev = ops.zeros((n, mt.shape[2] + 1))
    S = ops.empty(mt.shape)
    for r in range(mt.shape[0]):
        # S[r, c] = min(A[c], S[r, c-1] + 1) = min_{l<=c}(A[l] - l) + c, A = (min(S[r-1, c-1], S[r-1, c]) + 1) * m
        a = (ops.xp.minimum(prev[:, 1:], prev[:, :-1]) + 1) * mt[r]
        cur = ops.cummin(a - cols, 1) + cols
        prev[:, 1:] = cur
        S[r] = cur
    if not need_maps and not pad:  # d_max = ceil(largest square side / 2)
        return None, (ops.astype(ops.amax(S, (0, 2)), "i64") + 1) // 2
    S = ops.astype(ops.rows_back(S), "i32")  # (N, Hp, Wp)
    odd = S - (1 - S % 2)  # largest odd side <= S (S = 0 -> -1)
    if pad:
        hp, wp = S.shape[1:]
        p = ops.arange(hp).reshape(1, -1, 1) - pad  # image row of the square's corner
        q = ops.arange(wp).reshape(1, 1, -1) - pad
        # the centre (corner - (s-1)/2) must lie in the image: s <= 2p+1, 2q+1 and s >= 2(p-h+1)+1, 2(q-w+1)+1
        s_star = ops.xp.minimum(odd, ops.xp.minimum(2 * p + 1, 2 * q + 1))
        lo = ops.clamp_min(ops.xp.maximum(2 * (p - h + 1) + 1, 2 * (q - w + 1) + 1), 1)
        K = ops.xp.where(s_star >= lo, (s_star + 1) // 2, 0)
    else:
        K = (odd + 1) // 2
    if not need_maps:
        return None, ops.astype(ops.amax(K, (1, 2)), "i64")
    return S, K


def _dilated_backgrounds(m: torch.Tensor, border_is_background: bool):
    """Yield the background indicator (N, 1, H, W) after k = 0, 1, 2, … 3×3 dilations (k + 1 ≤ the largest
    possible distance). d_i ≥ k + 1 iff pixel i is not background after k dilations. Masks without background
    (outside ignored) are set to background so they drop out (the callers treat them apart)."""
    n, h, w = m.shape
    bg = (~m).to(torch.float16 if m.device.type == "cuda" else torch.float32)[:, None]
    if not border_is_background:
        bg[m.flatten(1).all(1)] = 1.0
    steps = (min(h, w) + 1) // 2 + 1 if border_is_background else max(h, w)
    for k in range(steps):
        yield k, bg
        if border_is_background:
            bg = F.max_pool2d(F.pad(bg, (1, 1, 1, 1), value=1.0), 3, stride=1)
        else:
            bg = F.max_pool2d(bg, 3, stride=1, padding=1)


def _erosion_distance_map(m: torch.Tensor, border_is_background: bool, early_exit: bool = True) -> torch.Tensor:
    """Per-pixel Chebyshev distance d_i to the background (0 on background, and on masks without background
    when the outside is ignored) by repeated dilation; (N, H, W) bool -> (N, H, W) int32. ``early_exit=False``
    runs the fixed number of steps without ever reading a value back to the host (no device synchronisation)."""
    d = torch.zeros((m.shape[0], 1, *m.shape[1:]), dtype=torch.int32, device=m.device)
    for k, bg in _dilated_backgrounds(m, border_is_background):
        fg = bg == 0
        d += fg
        if early_exit and k % 8 == 7 and not bool(fg.any()):
            break
    return d[:, 0]


def _erosion_max_distance(m: torch.Tensor, border_is_background: bool) -> torch.Tensor:
    """max_i d_i = the number of dilations of the background that some foreground survives, about 3 kernels per
    step for the whole batch: the fast choice on GPUs, where the row scan is bound by kernel launches.
    m: (N, H, W) bool -> (N,) int64."""
    count = torch.zeros(m.shape[0], dtype=torch.int64, device=m.device)
    for k, bg in _dilated_backgrounds(m, border_is_background):
        alive = bg.flatten(1).amin(1) == 0
        count += alive
        if k % 8 == 7 and not bool(alive.any()):
            break
    return count


def max_chebyshev_distance(
    masks: NdarrayOrTensor, border_is_background: bool = True, backend: str = "auto"
) -> torch.Tensor:
    """
    max_i d_i for a batch of masks ``(..., H, W)`` -> ``(...)`` int64 (0 for an all-background mask).

    ``border_is_background=True``: pixels outside the image count as background (a full mask has a finite
    size). ``False``: the outside is ignored, as ``scipy.ndimage.distance_transform_cdt(m, "chessboard")``;
    a mask without background then returns :data:`NO_BACKGROUND` (-1). ``backend``: "auto" (the numpy row scan
    for CPU tensors, the dilation loop elsewhere), or force "numpy" / "torch" (row scan) / "erosion".
    """
    m = _as_bool_masks(masks)
    lead = m.shape[:-2]
    m = m.reshape(-1, *m.shape[-2:])
    if m.shape[0] == 0:
        return torch.zeros(lead, dtype=torch.int64, device=m.device)
    if backend == "erosion" or (backend == "auto" and m.device.type != "cpu"):
        d = _erosion_max_distance(m, border_is_background)
    else:
        ops = _Ops(m.device, backend)
        pad = 0 if border_is_background else max(m.shape[-2:]) - 1
        _, d = _square_dp(ops.asarray(m), pad, False, ops)
        d = ops.to_torch(d).to(torch.int64)
    if not border_is_background:
        d = torch.where(m.reshape(m.shape[0], -1).all(1), torch.full_like(d, NO_BACKGROUND), d)
    return d.reshape(lead)


def object_size(masks: NdarrayOrTensor, border_is_background: bool = True, backend: str = "auto") -> torch.Tensor:
    """
    Object size g(y) = 2 · max_i d_i (Baručić & Kybic 2022, eqs. 3–5) of masks ``(..., H, W)``, returned as
    an int64 tensor of shape ``(...)`` on the masks' device. Masks may be bool, 0/1, ±1 (foreground where > 0).
    Worked examples (outside ignored): 3×3 square centred in 7×7 -> 4; 5×5 square in 7×7 -> 6; one pixel -> 2;
    all background -> 0. With ``border_is_background=False`` a mask without background gives -1.
    """
    d = max_chebyshev_distance(masks, border_is_background, backend)
    return torch.where(d < 0, d, 2 * d)


@torch.no_grad()
def size_flip_candidates(
    masks: torch.Tensor, border_is_background: bool = True, backend: str = "auto"
) -> torch.Tensor:
    """
    Exactly the pixels whose flip changes g(y), for masks ``(N, H, W)`` -> ``(N, H, W)`` bool, computed
    without evaluating g on any flipped mask (the pruning of the paper's Discussion). With D = max d:

    - a foreground pixel i: removing it lowers g iff i lies within Chebyshev distance D − 1 of *every* pixel
      attaining D; those pixels form a box (the intersection of the (2D−1)-squares around the argmax set);
    - a background pixel i: adding it raises g iff some (2D+1)-square around an image pixel contains i as its
      only background pixel (counting the outside as background when ``border_is_background``).

    No other flip can change g, so the sampled-gradient estimator is exactly zero there. For
    ``border_is_background=False``, masks without background get every pixel as a candidate.
    """
    mt = _as_bool_masks(masks)
    n, h, w = mt.shape
    use_erosion = backend == "erosion" or (backend == "auto" and mt.device.type != "cpu")
    ops = _Ops(mt.device, "torch" if use_erosion else backend)
    xp = ops.xp
    m = ops.asarray(mt)
    if use_erosion:  # per-pixel distances: the argmax set is the set of centres directly
        K = _erosion_distance_map(mt, border_is_background)
        D = ops.amax(K, (1, 2))
        Dv = D.reshape(-1, 1, 1)
        is_arg = (K == Dv) & (Dv > 0)
        cr = ops.arange(h).reshape(1, -1, 1)
        cc = ops.arange(w).reshape(1, 1, -1)
    else:
        pad = 0 if border_is_background else max(h, w) - 1
        S, K = _square_dp(m, pad, True, ops)
        D = ops.amax(K, (1, 2))  # (N,)
        Dv = D.reshape(-1, 1, 1)
        hp, wp = S.shape[1:]
        is_arg = (K == Dv) & (Dv > 0)  # bottom-right corners of (2D-1)-squares centred on argmax pixels
        cr = ops.arange(hp).reshape(1, -1, 1) - (Dv - 1) - pad  # centre coordinates, image frame
        cc = ops.arange(wp).reshape(1, 1, -1) - (Dv - 1) - pad

    # --- foreground -> background: box around the argmax set --------------------------------------------
    big = 10**6
    rmin = ops.amin(xp.where(is_arg, cr, big), (1, 2)).reshape(-1, 1, 1)
    rmax = ops.amax(xp.where(is_arg, cr, -big), (1, 2)).reshape(-1, 1, 1)
    cmin = ops.amin(xp.where(is_arg, cc, big), (1, 2)).reshape(-1, 1, 1)
    cmax = ops.amax(xp.where(is_arg, cc, -big), (1, 2)).reshape(-1, 1, 1)
    r_img = ops.arange(h).reshape(1, -1, 1)
    c_img = ops.arange(w).reshape(1, 1, -1)
    in_box = (r_img >= rmax - (Dv - 1)) & (r_img <= rmin + (Dv - 1)) & (c_img >= cmax - (Dv - 1))
    in_box &= c_img <= cmin + (Dv - 1)
    cand = m & in_box & (Dv > 0)

    # --- background -> foreground: (2D+1)-windows with exactly one background pixel ----------------------
    P = int(D.max()) + 1
    bg = ops.pad(ops.astype(~m, "i32"), P, 1 if border_is_background else 0)
    rr = ops.arange(h + 2 * P).reshape(1, -1, 1)
    cq = ops.arange(w + 2 * P).reshape(1, 1, -1)

    def integral(x):  # zero-padded 2D cumulative sums, (N, Hp+1, Wp+1)
        x = x.cumsum(1).cumsum(2)
        return ops.pad(x, 1, 0)[:, :-1, :-1]

    b = ops.arange(n).reshape(-1, 1, 1)
    r0, r1, c0, c1 = r_img + P - Dv, r_img + P + Dv + 1, c_img + P - Dv, c_img + P + Dv + 1

    def box(integ):
        return integ[b, r1, c1] - integ[b, r0, c1] - integ[b, r1, c0] + integ[b, r0, c0]

    cnt = box(integral(bg))
    one = cnt == 1
    if bool(one.any()):
        br = box(integral(bg * rr))[one] - P  # location of the single background pixel
        bc = box(integral(bg * cq))[one] - P
        bidx = xp.nonzero(one)[0] if ops.np else torch.nonzero(one, as_tuple=True)[0]
        inside = (br >= 0) & (br < h) & (bc >= 0) & (bc < w)
        cand[bidx[inside], br[inside], bc[inside]] = True
    if not border_is_background:
        no_bg = m.reshape(n, -1).all(1)
        cand[no_bg] = True
    return ops.to_torch(cand)


_LEVEL_BUDGET = 1 << 23


@torch.no_grad()
def flipped_sizes(
    masks: NdarrayOrTensor, border_is_background: bool = True, return_size: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """
    g(y↓i) for every pixel i at once: the object size (eqs. 3–5) of each mask with pixel i flipped, for masks
    ``(..., H, W)`` -> int64 ``(..., H, W)``, in closed form, without building or measuring any flipped mask.
    ``return_size=True`` returns ``(object_size(masks), flipped)``, the first from the same distance map.
    This is what the sampled-gradient estimator (eq. 21) needs for every pixel, and it equals
    ``object_size`` of each flipped mask exactly (tested against brute force). With D = max_j d_j:

    - removing a foreground pixel i gives d'_j = min(d_j, ‖j − i‖∞), so max_j d'_j ≥ k iff the level set
      {j : d_j ≥ k} is not inside the (2k−1)-square centred on i: a bounding-box test per level k;
    - adding a background pixel i raises a distance to at least r + 1 exactly where the (2r+1)-window
      centred on some pixel holds i as its only background pixel (window counts and the location of a single
      background pixel come from integral images), so g(y↓i) = 2 · max(D, max such r + 1).

    All levels are evaluated at once (in chunks bounded in memory), with a fixed number of kernels and no
    read-back to the host, so on a GPU it never synchronises with the device. Masks without background when
    ``border_is_background=False`` have every distance unbounded; flipping the only background pixel of a mask
    gives :data:`NO_BACKGROUND` there, as ``object_size`` does.
    """
    mt = _as_bool_masks(masks)
    lead = mt.shape[:-2]
    h, w = mt.shape[-2:]
    m = mt.reshape(-1, h, w)
    n = m.shape[0]
    dev = m.device
    if n == 0:
        z = torch.zeros((*lead, h, w), dtype=torch.int64, device=dev)
        return (z.sum((-2, -1)), z) if return_size else z
    big = h + w + 2
    no_bg = m.flatten(1).all(1)  # only possible to matter when the outside is ignored
    d = _erosion_distance_map(m, border_is_background, early_exit=False)
    if not border_is_background:
        d = torch.where(no_bg[:, None, None], torch.full_like(d, big), d)
    D = d.flatten(1).amax(1).clamp(max=max(h, w))  # (N,); only used for background pixels (never no_bg masks)
    rows = torch.arange(h, device=dev)
    cols = torch.arange(w, device=dev)

    # --- foreground -> background: levels k = 1 .. K ------------------------------------------------------
    K = (min(h, w) + 1) // 2 if border_is_background else max(h, w) - 1
    step = max(1, _LEVEL_BUDGET // (n * h * w))  # levels per chunk: (N, L, H, W) intermediates stay bounded
    row_d, col_d = d.amax(2), d.amax(1)
    new_fg = torch.zeros((n, h, w), dtype=torch.int32, device=dev)
    for k0 in range(1, K + 1, step):
        kk = torch.arange(k0, min(K, k0 + step - 1) + 1, device=dev)
        new_fg += _fg_levels(row_d, col_d, kk, rows, cols, big)

    # --- background -> foreground: window radii r = 1 .. R -------------------------------------------------
    R = (min(h, w) - 1) // 2 if border_is_background else max(h, w) - 1
    best = D.clamp(min=1)[:, None, None].expand(n, h, w).clone()  # an added pixel has d ≥ 1 itself
    if R >= 1:
        P = R
        hp, wp = h + 2 * P, w + 2 * P
        idt = torch.int32 if hp * wp * max(hp, wp) < 2**31 else torch.int64  # integral of coordinates fits
        bgp = F.pad((~m).to(idt)[:, None], (P, P, P, P), value=1 if border_is_background else 0)[:, 0]
        rr = (torch.arange(hp, device=dev, dtype=idt) - P).view(1, -1, 1)
        cc = (torch.arange(wp, device=dev, dtype=idt) - P).view(1, 1, -1)

        def integral(x):  # (N, Hp + 1, Wp + 1), I[a, b] = sum of x[:a, :b]
            return F.pad(x.cumsum(1, dtype=idt).cumsum(2, dtype=idt), (1, 0, 1, 0))

        i_cnt, i_row, i_col = integral(bgp), integral(bgp * rr), integral(bgp * cc)
        flat = torch.zeros(n * h * w + 1, dtype=torch.int64, device=dev)  # last slot: discarded writes
        b_idx = torch.arange(n, device=dev).view(-1, 1, 1, 1)
        for r0 in range(1, R + 1, step):
            radii = torch.arange(r0, min(R, r0 + step - 1) + 1, device=dev)
            y0 = (rows[None, :] + P - radii[:, None])[:, :, None]  # (L, h, 1)
            y1 = y0 + 2 * radii[:, None, None] + 1
            x0 = (cols[None, :] + P - radii[:, None])[:, None, :]  # (L, 1, w)
            x1 = x0 + 2 * radii[:, None, None] + 1

            def box(integ):  # (N, L, h, w) window sums centred on every image pixel
                return integ[:, y1, x1] - integ[:, y0, x1] - integ[:, y1, x0] + integ[:, y0, x0]

            one = box(i_cnt) == 1
            br, bc = box(i_row), box(i_col)  # the single background pixel's location where one
            ok = one & (br >= 0) & (br < h) & (bc >= 0) & (bc < w)
            lin = torch.where(ok, (b_idx * h + br) * w + bc, n * h * w)  # int64 (b_idx), as scatter needs
            val = (radii + 1).view(1, -1, 1, 1).expand(lin.shape)
            flat.scatter_reduce_(0, lin.reshape(-1), val.reshape(-1), reduce="amax")
        best = torch.maximum(best, flat[:-1].view(n, h, w))
    if not border_is_background:  # the mask's only background pixel: flipping it leaves no background
        only_bg = (~m).flatten(1).sum(1) == 1
        best = torch.where(only_bg[:, None, None], torch.full_like(best, NO_BACKGROUND), best)
    out = torch.where(m, 2 * new_fg.to(torch.int64), torch.where(best < 0, best, 2 * best)).reshape(*lead, h, w)
    if not return_size:
        return out
    size = 2 * D.to(torch.int64)
    if not border_is_background:
        size = torch.where(no_bg, torch.full_like(size, NO_BACKGROUND), size)
    return size.reshape(lead), out


def _fg_levels(row_d: torch.Tensor, col_d: torch.Tensor, kk: torch.Tensor, rows, cols, big: int) -> torch.Tensor:
    """Σ_k [∃ j: d_j ≥ k and ‖j − i‖∞ ≥ k] over the levels ``kk`` (L,) for every pixel i, (N, H, W), from the
    row and column maxima of d (``row_d`` (N, H), ``col_d`` (N, W)): the level set {d ≥ k} has rows
    {r : row_d[r] ≥ k} and columns {c : col_d[c] ≥ k}, so its bounding box is separable."""
    k = kk.view(1, -1, 1)
    any_r = row_d[:, None] >= k  # (N, L, H)
    any_c = col_d[:, None] >= k  # (N, L, W)
    rmin = torch.where(any_r, rows, big).amin(2, keepdim=True)
    rmax = torch.where(any_r, rows, -big).amax(2, keepdim=True)
    cmin = torch.where(any_c, cols, big).amin(2, keepdim=True)
    cmax = torch.where(any_c, cols, -big).amax(2, keepdim=True)
    row_in = (rmax - rows <= k - 1) & (rows - rmin <= k - 1)  # (N, L, H)
    col_in = (cmax - cols <= k - 1) & (cols - cmin <= k - 1)  # (N, L, W); an empty level is inside nowhere
    outside = ~(row_in[..., :, None] & col_in[..., None, :])  # (N, L, H, W)
    return (outside & any_r.any(2)[..., None, None]).sum(1, dtype=torch.int32)
