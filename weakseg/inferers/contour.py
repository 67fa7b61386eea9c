"""Contour inferers of the dynamic-programming head (EDPCNN) and its baselines.

- :class:`DPContourInferer`: network → warped map → DP → circular smoothing → filled contour (EDPCNN, and the
  "U-Net + DP" baseline when applied to a network trained with BCE, ``activation="sigmoid"``).
- :class:`CentreComponentInferer`: plain U-Net baseline, thresholded and reduced to the connected component
  that contains the centre (else the largest one).
- :class:`DPVolumeInferer`: the DP head on 3D volumes (e.g. ACDC-style short-axis NIfTI), slice by slice around
  given centres, returning a label volume aligned voxel for voxel with the input.

Each takes the LV centre as the ``centre`` keyword (``weakseg.engines.CentreBatch`` passes the batch's).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from monai.inferers import Inferer
from monai.utils import convert_to_dst_type

from weakseg.kernels.contour import StarPattern, dp_contour, smooth_indices

__all__ = ["CentreComponentInferer", "DPContourInferer", "DPVolumeInferer"]


class DPContourInferer(Inferer):
    """Output map → star-pattern warp → exact DP → circular moving average (``smoothing_window`` rays) → filled
    contour, as float masks (B, 1, H, W).

    Args:
        star_pattern: the :class:`~weakseg.networks.StarPattern`.
        delta: DP smoothness δ.
        smoothing_window: odd window of the circular moving average over rays (1: none).
        activation: ``None`` (EDPCNN: the raw map) or ``"sigmoid"`` (U-Net + DP: the probability map).
        channel: channel of the network output to use.
        rotation: pattern rotation in radians.
    """

    def __init__(self, star_pattern: StarPattern, delta: int = 2, smoothing_window: int = 5,
                 activation: str | None = None, channel: int = 0, rotation: float = 0.0) -> None:
        super().__init__()
        if activation not in (None, "sigmoid"):
            raise ValueError(f"activation must be None or 'sigmoid', got {activation!r}")
        self.star, self.delta, self.window = star_pattern, int(delta), int(smoothing_window)
        self.activation, self.channel, self.rotation = activation, int(channel), float(rotation)
        self.last_indices: torch.Tensor | None = None

    def from_map(self, out: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
        out = out.float()
        if self.activation == "sigmoid":
            out = torch.sigmoid(out)
        g = self.star.warp(out, centre, self.rotation, self.channel)
        idx = smooth_indices(dp_contour(g, self.delta), self.window)
        self.last_indices = idx
        return self.star.to_mask(idx, centre.to(idx.device), out.shape[-2:], self.rotation).to(out.device)

    def __call__(self, inputs: torch.Tensor, network: Callable, *args: Any, centre=None, **kwargs: Any):
        if centre is None:
            raise ValueError("DPContourInferer needs the object centre: call with centre=(B, 2) (row, col), e.g. "
                             "through prepare_batch=weakseg.engines.CentreBatch()")
        return self.from_map(network(inputs, *args, **kwargs), torch.as_tensor(centre, device=inputs.device))


class DPVolumeInferer(Inferer):
    """A 2D contour inferer (:class:`DPContourInferer`, or :class:`CentreComponentInferer`) applied to 3D volumes
    around given object centres, one slice at a time.

    For each centre ``(slice, row, col)`` (voxel indices; ``row``/``col`` index the two axes other than
    ``slice_axis``, in order, and may be fractional) the slice is z-scored over its whole plane (as in training,
    :func:`weakseg.data.lv_slices`), a ``spatial_size`` window centred on the centre is cut out (zero padded
    beyond the image), the network and the contour inferer run on the windows (``batch_size`` at a time), and
    each mask is pasted back at its place. Slices without a centre stay background; several centres on one slice
    give the union of their masks.

    Args:
        inferer: the 2D inferer; it is called as ``inferer.from_map(network(windows), centres)``.
        spatial_size: window (H, W); the training size, so that the star pattern fits.
        slice_axis: spatial axis of the slices (2: the last axis of an (X, Y, Z) volume, as in ACDC NIfTI).
        normalize: z-score each slice (set ``False`` when the preprocessing already normalises).
        batch_size: windows per network call.

    Call: ``inferer(inputs, network, centre=centres)`` with ``inputs`` (B, C, X, Y, Z) and ``centres`` (B, K, 3)
    or a sequence of B (K_b, 3) arrays. Returns float masks (B, 1, X, Y, Z) carrying the input's metadata.
    """

    def __init__(self, inferer: DPContourInferer | CentreComponentInferer, spatial_size: Sequence[int] = (160, 160),
                 slice_axis: int = 2, normalize: bool = True, batch_size: int = 32) -> None:
        super().__init__()
        if len(spatial_size) != 2:
            raise ValueError(f"spatial_size must be (H, W), got {spatial_size}")
        if slice_axis not in (0, 1, 2, -1, -2, -3):
            raise ValueError(f"slice_axis must be a spatial axis of a 3D volume (0, 1 or 2), got {slice_axis}")
        self.inferer, self.size = inferer, tuple(int(v) for v in spatial_size)
        self.axis, self.normalize, self.batch_size = int(slice_axis) % 3, bool(normalize), int(batch_size)

    @staticmethod
    def _name(inputs: torch.Tensor, b: int) -> str:
        meta = getattr(inputs, "meta", None) or {}
        name = meta.get("filename_or_obj")
        if isinstance(name, (list, tuple)):
            name = name[b] if b < len(name) else None
        return str(name) if name else f"volume {b} of the batch"

    def __call__(self, inputs: torch.Tensor, network: Callable, *args: Any, centre=None, **kwargs: Any):
        if centre is None:
            raise ValueError("DPVolumeInferer needs object centres: call with centre=(B, K, 3) (slice, row, col), e.g. "
                             "through prepare_batch=weakseg.engines.CentreBatch('centres')")
        if inputs.ndim != 5:
            raise ValueError(f"DPVolumeInferer expects (B, C, X, Y, Z) volumes, got shape {tuple(inputs.shape)}")
        x = torch.movedim(torch.as_tensor(inputs).float(), 2 + self.axis, 2)  # (B, C, S, H, W)
        b, c, n_sl, h, w = x.shape
        if isinstance(centre, torch.Tensor) and centre.ndim == 2:
            centre = centre[None]
        if len(centre) != b:
            raise ValueError(f"DPVolumeInferer: {len(centre)} centre lists for a batch of {b} volumes")
        wh, ww = self.size
        jobs, windows, local = [], [], []
        for bi in range(b):
            cen = torch.as_tensor(centre[bi], dtype=torch.float64).cpu().reshape(-1, 3)
            for k, r, cc in cen.tolist():
                if not (float(k).is_integer() and 0 <= k < n_sl and 0 <= r <= h - 1 and 0 <= cc <= w - 1):
                    raise ValueError(
                        f"{self._name(inputs, bi)}: centre (slice {k:g}, row {r:g}, col {cc:g}) is outside the volume: "
                        f"expected an integer slice in [0, {n_sl - 1}] along axis {self.axis}, row in [0, {h - 1}], "
                        f"col in [0, {w - 1}]"
                    )
                k = int(k)
                sl = x[bi, :, k]
                if self.normalize:
                    std = sl.std(unbiased=False)
                    sl = (sl - sl.mean()) / (std if float(std) > 0 else 1.0)
                r0, c0 = int(round(r)) - wh // 2, int(round(cc)) - ww // 2
                win = sl.new_zeros((c, wh, ww))
                ra, rb, ca, cb = max(r0, 0), min(r0 + wh, h), max(c0, 0), min(c0 + ww, w)
                win[:, ra - r0 : rb - r0, ca - c0 : cb - c0] = sl[:, ra:rb, ca:cb]
                jobs.append((bi, k, r0, c0, ra, rb, ca, cb))
                windows.append(win)
                local.append((r - r0, cc - c0))
        out = x.new_zeros((b, 1, n_sl, h, w))
        for i in range(0, len(windows), self.batch_size):
            win = torch.stack(windows[i : i + self.batch_size])
            cen = torch.tensor(local[i : i + self.batch_size], dtype=torch.float32, device=win.device)
            masks = self.inferer.from_map(network(win, *args, **kwargs), cen)
            for (bi, k, r0, c0, ra, rb, ca, cb), m in zip(jobs[i : i + self.batch_size], masks):
                part = m[0, ra - r0 : rb - r0, ca - c0 : cb - c0].to(out.dtype)
                out[bi, 0, k, ra:rb, ca:cb] = torch.maximum(out[bi, 0, k, ra:rb, ca:cb], part)
        out = torch.movedim(out, 2, 2 + self.axis)
        return convert_to_dst_type(out, inputs, dtype=torch.float32)[0]


class CentreComponentInferer(Inferer):
    """Plain segmentation baseline: ``network(inputs)[:, channel] > threshold`` (logits; 0 ⇔ p = ½), reduced to
    the 8-connected component containing the centre, or the largest component when the centre is background
    (no centre given: the largest). Returns float masks (B, 1, H, W)."""

    def __init__(self, threshold: float = 0.0, channel: int = 0) -> None:
        super().__init__()
        self.threshold, self.channel = float(threshold), int(channel)

    def from_map(self, out: torch.Tensor, centre: torch.Tensor | None) -> torch.Tensor:
        from scipy import ndimage

        fg = (out[:, self.channel] > self.threshold).cpu().numpy()
        res = np.zeros_like(fg)
        for i, m in enumerate(fg):
            lab, n = ndimage.label(m, structure=np.ones((3, 3)))
            if n == 0:
                continue
            keep = 0
            if centre is not None:
                r, c = (int(round(float(v))) for v in centre[i])
                if 0 <= r < m.shape[0] and 0 <= c < m.shape[1]:
                    keep = lab[r, c]
            if keep == 0:
                keep = int(np.argmax(np.bincount(lab.ravel())[1:])) + 1
            res[i] = lab == keep
        return torch.as_tensor(res, dtype=torch.float32, device=out.device)[:, None]

    def __call__(self, inputs: torch.Tensor, network: Callable, *args: Any, centre=None, **kwargs: Any):
        return self.from_map(network(inputs, *args, **kwargs), centre)
