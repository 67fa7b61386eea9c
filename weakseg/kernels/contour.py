"""EDPCNN's geometry and algorithm: the star pattern and the exact dynamic programme over it.

Nguyen & Ray, "End-to-end learning of convolutional neural net and dynamic programming for left ventricle
segmentation", MIDL 2020.

Pipeline (paper Fig. 1): the network's output map ``f`` (B, 1, H, W) is sampled on a **star pattern** of N rays
around the object centre, M + 1 points per ray; the difference of neighbouring samples along each ray is the
directional derivative ``g`` (B, N, M), the "warped map" (paper eq. 1). The **DP** (Algorithm 1) picks one
index ``v_n`` per ray so that the closed contour minimises

    Σ_{n=0}^{N-1} E(n, v_n, v_{n+1 mod N}),   E(n, i, j) = (g[n, i] + g[n+1, j]) / 2  if |i − j| ≤ δ, else ∞   (eq. 2)

i.e. it follows the steepest inside→outside descent of ``f`` while moving at most δ indices between
neighbouring rays. Index ``i`` on ray ``n`` is the boundary between samples ``i`` and ``i + 1``, at radius
``(i + ½)·R/M`` from the centre. Because the DP is not differentiable, a small network ``F`` (the
:class:`DPApproximator`) learns to predict its output from noisy warped maps, and its gradient trains the U-Net
(synthetic gradient, Algorithm 2; see :class:`weakseg.engines.EDPCNNTrainer`).

Coordinates are ``(row, col)`` in pixels with pixel centres at integers; ray ``n`` points along
``(sin θ_n, cos θ_n)`` with ``θ_n = rotation + 2πn/N``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from weakseg.kernels.polygon import polygon_to_mask

__all__ = ["StarPattern", "dp_contour", "smooth_indices"]


def _as_batch(x, b: int, device, name: str, width: int | None = None) -> torch.Tensor:
    t = torch.as_tensor(x, dtype=torch.float32, device=device)
    if width is None:  # per-image scalar
        t = t.reshape(-1) if t.ndim else t.reshape(1)
        if t.numel() == 1:
            t = t.expand(b)
        if t.shape != (b,):
            raise ValueError(f"{name} must be a number or one per image ({b}), got shape {tuple(t.shape)}")
        return t
    if t.ndim == 1:
        t = t[None]
    if t.shape[-1] != width or t.shape[0] not in (1, b):
        raise ValueError(f"{name} must have shape ({width},) or ({b}, {width}) as (row, col), got {tuple(t.shape)}")
    return t.expand(b, width)


class StarPattern:
    """N rays × M points, radius R (pixels), around a centre, rotated by an angle (paper Sec. 2.1).

    Args:
        num_rays: N, number of rays (paper: 50 for the DP benchmark).
        num_points: M, number of boundary positions per ray; M + 1 samples are taken at radii
            ``ρ_m = m·R/M``, ``m = 0..M``.
        radius: R in pixels; must cover the object from any centre used.
    """

    def __init__(self, num_rays: int = 50, num_points: int = 64, radius: float = 64.0) -> None:
        if int(num_rays) < 3:
            raise ValueError(f"num_rays must be >= 3 for a closed contour, got {num_rays}")
        if int(num_points) < 2:
            raise ValueError(f"num_points must be >= 2, got {num_points}")
        if not float(radius) > 0:
            raise ValueError(f"radius must be > 0 pixels, got {radius}")
        self.num_rays, self.num_points, self.radius = int(num_rays), int(num_points), float(radius)

    # ---------------------------------------------------------------- geometry
    def sample_radii(self, device=None) -> torch.Tensor:
        """``(M + 1,)`` sampling radii ``m·R/M``."""
        return torch.arange(self.num_points + 1, device=device, dtype=torch.float32) * (self.radius / self.num_points)

    def index_to_radius(self, index: torch.Tensor) -> torch.Tensor:
        """Radius of boundary index ``i`` (int or float): ``(i + ½)·R/M``."""
        return (index.float() + 0.5) * (self.radius / self.num_points)

    def angles(self, rotation: torch.Tensor) -> torch.Tensor:
        """``(B, N)`` ray angles ``rotation + 2πn/N``."""
        n = torch.arange(self.num_rays, device=rotation.device, dtype=torch.float32)
        return rotation[:, None] + n[None] * (2 * math.pi / self.num_rays)

    def points(self, centre, radii: torch.Tensor, rotation=0.0) -> torch.Tensor:
        """Pattern coordinates ``(row, col)``.

        Args:
            centre: ``(2,)`` or ``(B, 2)`` (row, col).
            radii: ``(K,)`` radii shared by all rays, or ``(B, N)`` one radius per ray.
            rotation: radians, number or ``(B,)``.

        Returns:
            ``(B, N, K, 2)`` for shared radii, ``(B, N, 2)`` for one radius per ray.
        """
        c = torch.as_tensor(centre, dtype=torch.float32)
        b = c.shape[0] if c.ndim == 2 else (radii.shape[0] if radii.ndim == 2 else 1)
        c = _as_batch(c, b, radii.device, "centre", 2)
        rot = _as_batch(rotation, b, radii.device, "rotation")
        th = self.angles(rot)  # (B, N)
        d = torch.stack([torch.sin(th), torch.cos(th)], -1)  # (B, N, 2)
        if radii.ndim == 1:
            return c[:, None, None, :] + radii[None, None, :, None] * d[:, :, None, :]
        return c[:, None, :] + radii[..., None] * d

    def _check(self, image: torch.Tensor, centre: torch.Tensor) -> None:
        h, w = image.shape[-2:]
        if 2 * self.radius > min(h, w):
            raise ValueError(
                f"star pattern radius {self.radius:g} px does not fit a {h}x{w} image (2·radius must be <= {min(h, w)}); "
                "pad the image (spatial_size) or use a smaller radius"
            )
        bad = (centre[:, 0] < 0) | (centre[:, 0] > h - 1) | (centre[:, 1] < 0) | (centre[:, 1] > w - 1)
        if bad.any():
            i = int(torch.nonzero(bad)[0])
            raise ValueError(
                f"star pattern centre {centre[i].tolist()} (row, col) of image {i} is outside the {h}x{w} image"
            )

    # ---------------------------------------------------------------- sampling
    def sample(self, image: torch.Tensor, centre, rotation=0.0, radii: torch.Tensor | None = None) -> torch.Tensor:
        """Bilinear samples of ``image`` (B, C, H, W) on the pattern → ``(B, C, N, K)`` (``K = M + 1`` by default).

        Uses ``grid_sample(align_corners=True)`` on exact (not truncated) coordinates; points outside the image
        take the nearest border value.
        """
        if image.ndim != 4:
            raise ValueError(f"star pattern sampling expects a (B, C, H, W) map, got shape {tuple(image.shape)}")
        b, _, h, w = image.shape
        c = _as_batch(torch.as_tensor(centre, dtype=torch.float32, device=image.device), b, image.device, "centre", 2)
        self._check(image, c)
        radii = self.sample_radii(image.device) if radii is None else radii.to(image.device, torch.float32)
        pts = self.points(c, radii, rotation)  # (B, N, K, 2) row, col
        grid = torch.stack([pts[..., 1] * (2.0 / max(w - 1, 1)) - 1.0, pts[..., 0] * (2.0 / max(h - 1, 1)) - 1.0], -1)
        return F.grid_sample(image, grid.to(image.dtype), mode="bilinear", padding_mode="border", align_corners=True)

    def warp(self, image: torch.Tensor, centre, rotation=0.0, channel: int = 0) -> torch.Tensor:
        """Warped map ``g`` (B, N, M): directional derivative of ``image[:, channel]`` along each ray (eq. 1),
        ``g[n, i] = f(ρ_{i+1}) − f(ρ_i)``; differentiable w.r.t. ``image``."""
        s = self.sample(image[:, channel : channel + 1], centre, rotation)[:, 0]  # (B, N, M+1)
        return s[..., 1:] - s[..., :-1]

    def label_indices(self, label: torch.Tensor, centre, rotation=0.0) -> torch.Tensor:
        """Ground-truth index per ray (B, N): where the object's boundary crosses the ray (first inside→outside
        crossing of the bilinearly sampled mask at level ½), i.e. ``i`` with sample ``i`` inside and ``i + 1``
        outside; ``M − 1`` when the whole ray is inside, 0 when the centre is outside."""
        s = self.sample((label > 0).float(), centre, rotation)[:, 0]  # (B, N, M+1)
        out = s < 0.5
        first = torch.where(out.any(-1), out.float().argmax(-1), torch.full_like(out[..., 0], self.num_points + 1,
                                                                                  dtype=torch.long))
        return (first - 1).clamp(0, self.num_points - 1)

    # ---------------------------------------------------------------- contours
    def contour(self, indices: torch.Tensor, centre, rotation=0.0) -> torch.Tensor:
        """Contour points ``(B, N, 2)`` (row, col) of per-ray indices (long or smoothed float) ``(B, N)``."""
        return self.points(torch.as_tensor(centre, dtype=torch.float32, device=indices.device),
                           self.index_to_radius(indices), rotation)

    def to_mask(self, indices: torch.Tensor, centre, spatial_size: Sequence[int], rotation=0.0) -> torch.Tensor:
        """Filled contour of ``indices`` (B, N) → float mask ``(B, 1, H, W)`` (exact polygon fill)."""
        return polygon_to_mask(self.contour(indices, centre, rotation), spatial_size)[:, None].float()


def _dp_starts(g: torch.Tensor, starts: torch.Tensor | None, delta: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-contour chain DP of a validated float (B, N, M) map for the start indices ``starts`` (B, K) of ray 0
    (``None``: all M starts, built without host synchronisation so that it can be captured in a CUDA graph).
    Returns the best path over those starts (B, N) and its energy (B,)."""
    b, n_rays, m = g.shape
    dev = g.device
    inf = torch.full((), float("inf"), dtype=g.dtype, device=dev)
    idx = torch.arange(m, device=dev)
    k_num = m if starts is None else starts.shape[1]
    # cost[b, k, j]: best path from v_0 = start_idx[b, k] to v_n = j, kept inside a buffer padded with δ × ∞ on
    # each side so that every step is one windowed min (over the (B, K, M, 2δ+1) band) and one add, in place
    padded = torch.full((b, k_num, m + 2 * delta), float("inf"), dtype=g.dtype, device=dev)
    cost = padded[..., delta : delta + m]
    if starts is None:
        start_idx = idx[None].expand(b, m)
        cost.copy_(torch.where((idx[:, None] == idx[None, :])[None], g[:, 0, :, None], inf))
    else:
        start_idx = starts
        cost.scatter_(-1, starts[..., None], g[:, 0].gather(1, starts)[..., None])
    store = torch.uint8 if 2 * delta <= 255 else torch.int16
    back = torch.empty((n_rays - 1, b, k_num, m), dtype=store, device=dev)
    band = padded.unfold(-1, 2 * delta + 1, 1)
    best = torch.empty((b, k_num, m), dtype=g.dtype, device=dev)
    arg = torch.empty((b, k_num, m), dtype=torch.long, device=dev)
    rays = g[:, :, None, :].unbind(1)  # one view per ray, (B, 1, M), taken in one call
    for n, back_n in enumerate(back.unbind(0), 1):
        torch.min(band, -1, out=(best, arg))
        torch.add(best, rays[n], out=cost)
        back_n.copy_(arg)
    close = (start_idx[..., None] - idx).abs() <= delta  # |v_{N-1} − v_0| ≤ δ
    tot, last = torch.where(close, cost, inf).min(-1)  # (B, K)
    energy, k = tot.min(-1)
    bi = torch.arange(b, device=dev)
    # back-pointers of each image's winning start as absolute indices (N − 1, B, M), then one gather per ray
    prev = back[:, bi, k].long() + (idx - delta)
    if dev.type == "cpu":  # pointer chasing: numpy indexing costs a fraction of a torch op per ray
        prev_np, path_np = prev.numpy(), np.empty((b, n_rays), dtype=np.int64)
        path_np[:, -1] = last[bi, k].numpy()
        rows = np.arange(b)
        for n in range(n_rays - 1, 0, -1):
            path_np[:, n - 1] = prev_np[n - 1, rows, path_np[:, n]]
        return torch.from_numpy(path_np), energy
    path = torch.empty(b, n_rays, dtype=torch.long, device=dev)
    path[:, -1] = last[bi, k]
    for n in range(n_rays - 1, 0, -1):
        path[:, n - 1 : n] = prev[n - 1].gather(1, path[:, n : n + 1])
    return path, energy


def _dp_impl(g: torch.Tensor, delta: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All-starts DP of :func:`dp_contour`: every start index of ray 0 at once, no host synchronisation."""
    return _dp_starts(g, None, delta)


def _dp_pruned(g: torch.Tensor, delta: int, rounds: Sequence[int] = (2, 8, 24)) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact DP of :func:`dp_contour` with bounded starts, for the CPU.

    The best open chain from ``v_0 = s`` (closure ignored) is a lower bound ``L(s)`` of every closed contour
    starting at ``s``; one backward pass gives ``L`` for all s at the cost of a single chain. The closed DP then
    runs for the K starts with the smallest bounds only; the result is optimal once its energy is ≤ the
    (K+1)-th smallest bound, since no other start can do better. Maps not certified after ``rounds`` get the
    all-starts DP. Same optimum as :func:`_dp_impl`; costs ``O(B·N·M·(2δ+1)·K)`` instead of ``O(B·N·M²·(2δ+1))``
    when the bounds are tight (they are on contour-like maps)."""
    b, n_rays, m = g.shape
    neg = -g  # the bound pass needs values only: a band minimum is a max pooling (−∞ padded) of the negated map
    rays = neg[:, None].unbind(-2)  # (B, 1, M) per ray
    bound = rays[-1]
    for n in range(n_rays - 2, -1, -1):
        # (B, 1, M): minus the best open chain from v_n = j to the last ray
        bound = F.max_pool1d(bound, 2 * delta + 1, 1, delta).add_(rays[n])
    bound = -bound[:, 0]
    lb, order = bound.sort(-1)
    path = torch.empty(b, n_rays, dtype=torch.long, device=g.device)
    energy = torch.empty(b, dtype=g.dtype, device=g.device)
    todo = torch.arange(b, device=g.device)
    for k in rounds:
        if k >= m:
            break
        p, e = _dp_starts(g[todo], order[todo, :k], delta)
        ok = e <= lb[todo, k]
        path[todo[ok]], energy[todo[ok]] = p[ok], e[ok]
        todo = todo[~ok]
        if todo.numel() == 0:
            return path, energy
    p, e = _dp_starts(g[todo], None, delta)
    path[todo], energy[todo] = p, e
    return path, energy


class _CUDAGraphCache:
    """Replays ``fn(x)`` from CUDA graphs captured once per input shape/dtype/device (the DP is ~300 small
    kernels, so on a GPU its cost is launch overhead; a graph replays them with one launch)."""

    def __init__(self, max_entries: int = 16) -> None:
        self.max_entries = max_entries
        self.entries: dict = {}

    def __call__(self, fn, x: torch.Tensor, key: tuple):
        ent = self.entries.get(key)
        if ent is None:
            if len(self.entries) >= self.max_entries:
                self.entries.pop(next(iter(self.entries)))
            static_in = x.clone()
            side = torch.cuda.Stream(device=x.device)
            side.wait_stream(torch.cuda.current_stream(x.device))
            with torch.cuda.stream(side):
                fn(static_in)  # warm-up outside the capture
            torch.cuda.current_stream(x.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = fn(static_in)
            ent = self.entries[key] = (graph, static_in, static_out)
        graph, static_in, static_out = ent
        static_in.copy_(x)
        graph.replay()
        return tuple(o.clone() for o in static_out)


_DP_GRAPHS = _CUDAGraphCache()


def dp_contour(warped: torch.Tensor, delta: int, return_energy: bool = False, cuda_graph: bool = True,
               method: str = "auto"):
    """Exact closed-contour dynamic programming (Algorithm 1, energy eq. 2), batched and banded.

    Minimises ``Σ_n E(n, v_n, v_{n+1 mod N})`` with ``E(n, i, j) = (g[n,i] + g[n+1,j])/2`` for ``|i − j| ≤ δ``
    (∞ otherwise), which on a closed contour equals ``Σ_n g[n, v_n]``. The closure constraint between the last
    ray and ray 0 is enforced exactly by running the chain DP for every start index ``v_0 = s`` at once
    (state ``(B, M, M)``), only over the ``2δ + 1`` band, and closing with ``|v_{N−1} − s| ≤ δ``: cost
    ``O(B·N·M²·(2δ+1))``, N sequential steps on the input's device (replayed from a CUDA graph on a GPU).
    On the CPU (``method="auto"`` or ``"pruned"``) the starts are first bounded from below by the best open
    chain from each of them, and only the starts whose bound can still win are run (:func:`_dp_pruned`): the
    same optimum, several times faster.

    Args:
        warped: ``g`` of shape (B, N, M) (e.g. :meth:`StarPattern.warp`), any float dtype.
        delta: δ ≥ 0, the largest index change between neighbouring rays.
        return_energy: also return the minimal energy (B,).
        cuda_graph: on CUDA, capture the DP once per input shape and replay it.
        method: ``"all_starts"``, ``"pruned"`` (exact too; host-synchronising, so not for CUDA graphs) or
            ``"auto"`` (pruned on the CPU, all starts elsewhere). Ties between equal-energy contours may be broken
            differently by the two.

    Raises:
        ValueError: bad shape or δ; NaN/Inf in ``warped`` (checked on the CPU only: on a GPU the check would
            stall the launch queue).

    Returns:
        LongTensor (B, N) of indices (and the energy).
    """
    if warped.ndim != 3:
        raise ValueError(f"dp_contour expects warped maps of shape (B, N, M), got {tuple(warped.shape)}")
    if int(delta) != delta or delta < 0:
        raise ValueError(f"delta must be a non-negative integer, got {delta}")
    if warped.shape[1] < 2:
        raise ValueError(f"dp_contour needs at least 2 rays, got {warped.shape[1]}")
    delta = min(int(delta), warped.shape[2] - 1)  # δ ≥ M − 1 is no constraint
    g = warped.detach()
    if not torch.is_floating_point(g):
        g = g.float()
    if method not in ("auto", "all_starts", "pruned"):
        raise ValueError(f"method must be 'auto', 'all_starts' or 'pruned', got {method!r}")
    pruned = method == "pruned" or (method == "auto" and g.device.type == "cpu")
    if (pruned or not g.is_cuda) and not torch.isfinite(g).all():  # the pruned DP synchronises anyway
        raise ValueError("dp_contour: the warped map has NaN/Inf values")
    if pruned:
        path, energy = _dp_pruned(g, delta)
    elif g.is_cuda and cuda_graph and not torch.cuda.is_current_stream_capturing():
        path, energy = _DP_GRAPHS(lambda x: _dp_impl(x, delta), g, (tuple(g.shape), g.dtype, str(g.device), delta))
    else:
        path, energy = _dp_impl(g, delta)
    return (path, energy) if return_energy else path


def smooth_indices(indices: torch.Tensor, window: int = 5) -> torch.Tensor:
    """Circular moving average of per-ray indices (B, N) over ``window`` (odd) neighbouring rays → float (B, N)."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"smoothing window must be a positive odd number, got {window}")
    x = indices.float()
    if window == 1:
        return x
    h = window // 2
    padded = torch.cat([x[:, -h:], x, x[:, :h]], 1)
    return padded.unfold(1, window, 1).mean(-1)
