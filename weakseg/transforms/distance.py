"""
Signed distance maps for the boundary loss (Kervadec et al., "Boundary loss for highly unbalanced segmentation",
MIDL 2019, eq. 5 with the level-set φ_G), in the convention of MONAI's ``BoundaryLoss.compute_distance_map``:

    φ(p) = −(d(p, Ω_bg) − 1)  for p in the foreground   (≤ 0, 0 on the inner boundary pixels)
    φ(p) =   d(p, Ω_fg)       for p in the background   (≥ 1 next to the object)

with d the Euclidean distance (in units of ``spacing``) to the nearest pixel of the other class, so the zero
crossing lies on the object boundary. A mask with no foreground or no background has no boundary: its map is
all zeros (as in MONAI). Optionally φ is clamped to [−bound, bound] and divided by ``rescale`` (the thesis uses
128 and 128, which maps φ into [−1, 1]).

Algorithms (both exact):
- ``numpy`` (default on CPU): ``scipy.ndimage.distance_transform_edt`` per mask, the inside pass only on the
  object's bounding box (about as fast as a plain scipy loop: on 2 CPU cores neither a stacked scipy call nor the
  torch algorithm below beats it, see ``benchmarks/RESULTS.md``).
- ``torch`` (any device, default off CPU): the separable form of the squared EDT,
  D²(p) = min_k [ D²_{axis<a}(p with p_a = k) + (p_a − k)² s_a² ], evaluated axis by axis as a brute-force
  min-plus product on the whole batch (O(N·|Ω|·L) per axis), in chunks that bound the memory.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends
from monai.utils.type_conversion import convert_to_dst_type

__all__ = ["signed_distance_map", "SignedDistanceMap", "SignedDistanceMapd"]

# elements of the (…, L_out, L_in) min-plus temporary per chunk: cache-sized on CPU, large on GPUs
_CHUNK_ELEMENTS = {"cpu": 1 << 20, "other": 1 << 26}


def _check_spacing(spacing, nd: int) -> tuple[float, ...]:
    if spacing is None:
        return (1.0,) * nd
    sp = (float(spacing),) * nd if np.isscalar(spacing) else tuple(float(s) for s in spacing)
    if len(sp) != nd or any(not np.isfinite(s) or s <= 0 for s in sp):
        raise ValueError(f"spacing must be {nd} positive finite numbers, got {spacing!r}")
    return sp


def _minplus_axis(f: torch.Tensor, axis: int, step: float) -> torch.Tensor:
    """out[..., i, ...] = min_k f[..., k, ...] + ((i − k)·step)² along ``axis`` (f of shape (N, *spatial))."""
    length = f.shape[axis]
    g = f.movedim(axis, -1)
    idx = torch.arange(length, device=f.device, dtype=f.dtype)
    kernel = ((idx[:, None] - idx[None, :]) * step) ** 2  # (L_out, L_in)
    per_item = g[0].numel() * length
    budget = _CHUNK_ELEMENTS["cpu" if f.device.type == "cpu" else "other"]
    chunk = max(1, budget // max(per_item, 1))
    outs = [(part.unsqueeze(-2) + kernel).amin(-1) for part in torch.split(g, chunk, dim=0)]
    return torch.cat(outs, 0).movedim(-1, axis)


def _edt_torch(features: torch.Tensor, spacing: Sequence[float]) -> torch.Tensor:
    """Euclidean distance of every pixel to the nearest ``True`` of its own mask; features (N, *spatial) bool.
    Masks without any feature get +inf."""
    f = torch.where(features, 0.0, float("inf")).to(torch.float32)
    for a, s in enumerate(spacing):
        f = _minplus_axis(f, a + 1, s)
    return f.sqrt()


def _signed_torch(masks: torch.Tensor, spacing: Sequence[float]) -> torch.Tensor:
    both = torch.cat([masks, ~masks], 0)  # distance to the nearest foreground / background pixel
    d = _edt_torch(both, spacing)
    to_fg, to_bg = d[: masks.shape[0]], d[masks.shape[0] :]
    return torch.where(masks, -(to_bg - 1.0), to_fg)


def _signed_numpy(masks: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Per-mask scipy EDTs; the inside distances only on the object's bounding box grown by one pixel (clipped to
    the image): every pixel outside the box is background and the grown box holds the nearest of them."""
    from scipy.ndimage import distance_transform_edt

    out = np.empty(masks.shape, np.float32)
    if all(sp == 1.0 for sp in spacing):
        spacing = None  # scipy's unit-sampling path is faster
    for i, m in enumerate(masks):
        phi = distance_transform_edt(~m, sampling=spacing)  # at background pixels: distance to the foreground
        box = []
        for ax in range(m.ndim):
            idx = np.flatnonzero(m.any(axis=tuple(a for a in range(m.ndim) if a != ax)))
            box.append(slice(max(int(idx[0]) - 1, 0), min(int(idx[-1]) + 2, m.shape[ax])))
        box = tuple(box)
        sub = m[box]
        phi[box] = np.where(sub, 1.0 - distance_transform_edt(sub, sampling=spacing), phi[box])
        out[i] = phi
    return out


def signed_distance_map(
    masks: NdarrayOrTensor,
    spatial_dims: int = 2,
    bound: float | None = None,
    rescale: float | None = None,
    spacing: float | Sequence[float] | None = None,
    backend: str = "auto",
) -> NdarrayOrTensor:
    """Signed distance map φ of each mask (see module docstring), batched.

    Args:
        masks: (..., *spatial) binary masks (bool, 0/1 or probabilities > 0.5 count as foreground), the last
            ``spatial_dims`` axes spatial, all leading axes batch/channel. numpy or torch (any device).
        spatial_dims: 2 or 3.
        bound: clamp φ to [−bound, bound] (thesis: 128); None keeps it.
        rescale: divide φ by this (after clamping; thesis: 128); None keeps it.
        spacing: pixel spacing per spatial axis (scalar or sequence), default 1.
        backend: ``"auto"`` (scipy on CPU, torch elsewhere), ``"numpy"`` (scipy) or ``"torch"``.

    Returns:
        float32 array/tensor of the same shape, type and device as ``masks``.
    """
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    if backend not in ("auto", "numpy", "torch"):
        raise ValueError(f"backend must be 'auto', 'numpy' or 'torch', got {backend!r}")
    if bound is not None and not bound > 0:
        raise ValueError(f"bound must be > 0 or None, got {bound}")
    if rescale is not None and not rescale > 0:
        raise ValueError(f"rescale must be > 0 or None, got {rescale}")
    t = torch.as_tensor(masks)
    if t.ndim < spatial_dims:
        raise ValueError(f"masks of shape {tuple(t.shape)} have fewer than spatial_dims={spatial_dims} axes")
    sp = _check_spacing(spacing, spatial_dims)
    shape = t.shape
    spatial = shape[t.ndim - spatial_dims :]
    flat = (t > 0.5 if t.dtype != torch.bool else t).reshape((-1,) + tuple(spatial))
    if flat.shape[0] == 0 or flat[0].numel() == 0:
        out = torch.zeros(shape, dtype=torch.float32, device=t.device)
        return convert_to_dst_type(out, masks, dtype=torch.float32)[0]
    use_numpy = backend == "numpy" or (backend == "auto" and flat.device.type == "cpu")
    red = tuple(range(1, flat.ndim))
    has_boundary = flat.any(dim=red) & ~flat.all(dim=red)
    out = torch.zeros(flat.shape, dtype=torch.float32, device=flat.device)
    if has_boundary.any():
        sub = flat[has_boundary]
        if use_numpy:
            phi = torch.from_numpy(_signed_numpy(sub.cpu().numpy(), sp)).to(flat.device)
        else:
            phi = _signed_torch(sub, sp)
        if bound is not None:
            phi = phi.clamp(-bound, bound)
        if rescale is not None:
            phi = phi / rescale
        out[has_boundary] = phi
    out = out.reshape(shape)
    return convert_to_dst_type(out, masks, dtype=torch.float32)[0]


class SignedDistanceMap(Transform):
    """Signed distance map of each channel of a channel-first mask (C, H, W[, D]) → float32 (C, H, W[, D]).

    Negative inside, positive outside, zero crossing at the boundary; empty (or full) channels give zeros.
    See :func:`signed_distance_map` for the arguments; ``spatial_dims`` defaults to ``img.ndim - 1``.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        bound: float | None = None,
        rescale: float | None = None,
        spacing: float | Sequence[float] | None = None,
        spatial_dims: int | None = None,
        backend: str = "auto",
    ) -> None:
        self.bound, self.rescale, self.spacing = bound, rescale, spacing
        self.spatial_dims, self.compute_backend = spatial_dims, backend

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        nd = self.spatial_dims or img.ndim - 1
        if img.ndim != nd + 1:
            raise ValueError(f"SignedDistanceMap expects a channel-first mask (C, *spatial{nd}), got {tuple(img.shape)}")
        return signed_distance_map(img, nd, self.bound, self.rescale, self.spacing, self.compute_backend)


class SignedDistanceMapd(MapTransform):
    """Dictionary version of :class:`SignedDistanceMap`.

    Args:
        keys: mask keys.
        postfix: write the map to ``key + postfix`` (e.g. ``"_sdm"``) and keep the mask; None replaces the mask.
            With MONAI's ``ConcatItemsd(keys=["label", "label_sdm"], name="label")`` the map becomes an extra
            label channel for :class:`weakseg.losses.DistanceMapBoundaryLoss`.
    """

    backend = SignedDistanceMap.backend

    def __init__(
        self,
        keys: KeysCollection,
        bound: float | None = None,
        rescale: float | None = None,
        spacing: float | Sequence[float] | None = None,
        spatial_dims: int | None = None,
        backend: str = "auto",
        postfix: str | None = "_sdm",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = SignedDistanceMap(bound, rescale, spacing, spatial_dims, backend)
        self.postfix = postfix

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            out = self.transform(d[key])
            if hasattr(out, "meta"):  # a map is not a label: drop the MetaTensor bookkeeping of the mask
                out = out.as_tensor()
            d[f"{key}{self.postfix}" if self.postfix else key] = out
        return d


SignedDistanceMapD = SignedDistanceMapDict = SignedDistanceMapd
