"""EDPCNN training (synthetic gradients through the DP, Algorithm 2) and contour inference.

- :class:`EDPCNNTrainer`: a MONAI ``SupervisedTrainer`` whose iteration (i) warps the network's output map on a
  star pattern around a jittered centre with a random rotation, (ii) takes ``S`` steps of the approximator ``F``,
  each with cross-entropy to the DP's indices of a fresh noisy copy ``g + σε`` of the warped map, and (iii) trains the
  network with the cross-entropy of ``F(g)`` to the ground-truth indices, back-propagated through ``F``.
- :class:`DPContourInferer`: network → warped map → DP → circular smoothing → filled contour (EDPCNN, and the
  "U-Net + DP" baseline when applied to a network trained with BCE, ``activation="sigmoid"``).
- :class:`CentreComponentInferer`: plain U-Net baseline, thresholded and reduced to the connected component
  that contains the centre (else the largest one).
- :class:`CentreBatch`: ``prepare_batch`` passing the batch's ``centre`` to these inferers.
- :class:`DPVolumeInferer`: the DP head on 3D volumes (e.g. ACDC-style short-axis NIfTI), slice by slice around
  given centres, returning a label volume aligned voxel for voxel with the input.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from ignite import distributed as idist
from ignite.engine import Events
from monai.engines import SupervisedTrainer, default_prepare_batch
from monai.engines.utils import IterationEvents
from monai.inferers import Inferer
from monai.utils import CommonKeys as Keys
from monai.utils import convert_to_dst_type

from weakseg.engines.augment import device_generator
from weakseg.networks.edpcnn import DPApproximator, StarPattern, dp_contour, smooth_indices
from weakseg.transforms.contour import mask_centroid

logger = logging.getLogger(__name__)

__all__ = [
    "CentreBatch",
    "CentreComponentInferer",
    "DPContourInferer",
    "DPVolumeInferer",
    "EDPCNNTrainer",
    "jitter_centres",
    "sample_centres_inside",
]


def sample_centres_inside(
    labels: torch.Tensor, fraction: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Centre jitter for training: a uniformly random object pixel per image (B, 2) (row, col), restricted to
    those within ``fraction`` × the object's equivalent radius ``sqrt(area/π)`` of its centroid (``fraction``
    ≥ ~1 uses the whole object). ``labels``: (B, 1, H, W)."""
    m = labels[:, 0] > 0
    b, h, w = m.shape
    cen = mask_centroid(m).to(labels.device)
    area = m.flatten(1).sum(1).float()
    r_eq = torch.sqrt(area / math.pi)
    rr = torch.arange(h, device=labels.device, dtype=torch.float32)[None, :, None]
    cc = torch.arange(w, device=labels.device, dtype=torch.float32)[None, None, :]
    d2 = (rr - cen[:, 0, None, None]) ** 2 + (cc - cen[:, 1, None, None]) ** 2
    ok = m & (d2 <= (fraction * r_eq)[:, None, None] ** 2)
    ok = torch.where(ok.flatten(1).any(1)[:, None, None], ok, m).flatten(1)
    # the (r+1)-th allowed pixel in row-major order, r uniform in [0, count): cheaper than multinomial over H·W
    count = ok.sum(1)
    r = (torch.rand(b, generator=generator, device=labels.device) * count).long().minimum(count - 1)
    pick = (ok.cumsum(1) > r[:, None]).int().argmax(1)
    return torch.stack([(pick // w).float(), (pick % w).float()], 1)


def jitter_centres(
    labels: torch.Tensor, fraction: float, generator: torch.Generator | None = None, centres: torch.Tensor | None = None
) -> torch.Tensor:
    """Evaluation jitter (robustness curve, paper Fig. 3b): move each centre (default: the mask centroid) by
    ``fraction`` × the object's equivalent radius in a uniformly random direction; clamped to the image."""
    m = labels[:, 0] > 0
    cen = mask_centroid(m).to(labels.device) if centres is None else centres.float()
    r_eq = torch.sqrt(m.flatten(1).sum(1).float() / math.pi)
    phi = torch.rand(m.shape[0], generator=generator, device=labels.device) * (2 * math.pi)
    out = cen + (fraction * r_eq)[:, None] * torch.stack([torch.sin(phi), torch.cos(phi)], 1)
    out[:, 0].clamp_(0, m.shape[1] - 1)
    out[:, 1].clamp_(0, m.shape[2] - 1)
    return out


class CentreBatch:
    """``prepare_batch`` returning ``(image, label, (), {"centre": centre})`` so that ``SupervisedEvaluator``
    passes the centre to the inferer. The centre is the batch's ``centre_key`` (B, 2) when present, else the
    label's centroid."""

    def __init__(self, centre_key: str = "centre", prepare_batch: Callable = default_prepare_batch) -> None:
        self.centre_key, self.prepare_batch = centre_key, prepare_batch

    def __call__(self, batchdata: Any, device=None, non_blocking: bool = False, **kwargs: Any):
        prepared = self.prepare_batch(batchdata, device, non_blocking, **kwargs)
        image, label = prepared[0], prepared[1]
        if isinstance(batchdata, dict) and self.centre_key in batchdata:
            centre = torch.as_tensor(batchdata[self.centre_key]).to(image.device, torch.float32)
        elif isinstance(label, torch.Tensor):
            centre = mask_centroid(label).to(image.device)
        else:
            raise KeyError(f"CentreBatch: the batch has no '{self.centre_key}' and no label to derive it from")
        return image, label, (), {"centre": centre}


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


class EDPCNNTrainer(SupervisedTrainer):
    """End-to-end training of a segmentation network through the DP with synthetic gradients (Algorithm 2).

    Per iteration, with images x (B, C, H, W) and masks y (B, 1, H, W):

    1. ``f = network(x)``; centre ``c`` = a random object pixel (``centre_jitter``: fraction of the object's
       equivalent radius, ``None``: the centroid), rotation uniform in ``[0, 2π/N)`` (``rotation_jitter``);
       ``g = star_pattern.warp(f, c, rot)`` (B, N, M); ground-truth indices ``t`` from ``y`` on the same pattern.
    2. for s = 1..S (``num_samples``): a noisy copy ``g̃ = g + σ ε`` (ε ~ N(0, 1)), DP indices
       ``v = dp_contour(g̃, δ)`` and one step of ``approximator_optimizer`` on ``CE(F(g̃), v)`` (the DP of all S
       copies runs as one batch).
    3. ``CE(F(g), t)`` back-propagated through the frozen ``F`` into the network; one step of ``optimizer``.

    ``engine.state.output``: ``image``, ``label``, ``loss`` (step 3) and ``approx_loss`` (last F step).
    Other arguments are those of MONAI's ``SupervisedTrainer`` (``loss_function`` is the cross-entropy).

    ``cuda_graph``: on CUDA, steps 2 and 3 of the approximator are captured as CUDA graphs at the first
    iteration (step 2 only with a capturable optimizer, e.g. ``Adam(..., capturable=True)``) and replayed; the
    graphs hold the approximator's and its optimizer's tensors, so load their states (resume) before the run
    starts, as :class:`weakseg.engines.ResumeHandler` does, not in the middle of it.

    ``sync_approximator``: under ``torch.distributed`` (e.g. ``torchrun`` with a DDP-wrapped network) the
    approximator starts from rank 0's weights and each of its steps uses the gradient averaged over all ranks,
    so every rank holds the same ``F`` (the one saved by rank 0) trained on the global batch; the inner steps then
    run eagerly (no CUDA graph for step 2). ``None``: on whenever the world size is > 1. Each rank draws its own
    jitter, rotations and noise (seed + 7919 · rank).

    ``approximator_channels_last``: store the approximator's weights channels-last (NHWC), which makes oneDNN's
    convolutions of its 8-channel maps faster on the CPU (``benchmarks/edpcnn.py``); ``None``: on for a CPU
    ``device``. Parameters keep their identity, so the optimizer built before the trainer still holds them.
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader,
        network: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        approximator: DPApproximator,
        approximator_optimizer: torch.optim.Optimizer,
        star_pattern: StarPattern,
        delta: int = 2,
        sigma: float = 1.0,
        num_samples: int = 10,
        centre_jitter: float | None = 1.0,
        rotation_jitter: bool = True,
        channel: int = 0,
        seed: int | None = 0,
        cuda_graph: bool = True,
        sync_approximator: bool | None = None,
        approximator_channels_last: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        if int(num_samples) < 1:
            raise ValueError(f"num_samples (S, inner approximator steps) must be >= 1, got {num_samples}")
        kwargs.setdefault("loss_function", torch.nn.CrossEntropyLoss())
        super().__init__(device=device, max_epochs=max_epochs, train_data_loader=train_data_loader, network=network,
                         optimizer=optimizer, **kwargs)
        self.approximator, self.approximator_optimizer = approximator, approximator_optimizer
        self.star, self.delta, self.sigma = star_pattern, int(delta), float(sigma)
        self.num_samples = int(num_samples)
        self.centre_jitter, self.rotation_jitter, self.channel = centre_jitter, bool(rotation_jitter), int(channel)
        self.seed, self._generators = seed, {}
        self.cuda_graph, self._graphs = bool(cuda_graph), {}
        self.sync_approximator = sync_approximator
        if approximator_channels_last or (approximator_channels_last is None and torch.device(device).type == "cpu"):
            self.approximator.to(memory_format=torch.channels_last)
        self.add_event_handler(Events.STARTED, self._start_distributed)
        if self.cuda_graph and torch.device(device).type == "cuda" and not self._capturable():
            logger.info("EDPCNNTrainer: approximator_optimizer is not capturable (e.g. Adam(capturable=True)); "
                        "approximator steps run without CUDA graphs")

    def _synced(self) -> bool:
        return idist.get_world_size() > 1 and self.sync_approximator is not False

    def _start_distributed(self, engine: "EDPCNNTrainer") -> None:
        """Under torch.distributed: the approximator starts from rank 0's weights (as DDP does for the network)
        and each rank draws its own centre jitter, rotations and noise."""
        if idist.get_world_size() == 1:
            return
        self._generators.clear()  # re-seeded per rank by _rank_seed()
        if self._synced():
            with torch.no_grad():
                for t in list(self.approximator.parameters()) + list(self.approximator.buffers()):
                    torch.distributed.broadcast(t, 0)

    def _rank_seed(self) -> int | None:
        """``seed`` + 7919 · rank (``None`` stays random), so ranks draw different jitter and noise."""
        return None if self.seed is None else int(self.seed) + 7919 * idist.get_rank()

    def _capturable(self) -> bool:
        return all(g.get("capturable", True) for g in self.approximator_optimizer.param_groups)

    def _approx_step(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(self.approximator(x).transpose(1, 2), t)
        self.approximator_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self._synced():  # data parallel: the approximator steps on the gradient averaged over all ranks
            grads = [p.grad for p in self.approximator.parameters() if p.grad is not None]
            flat = torch.cat([g.reshape(-1) for g in grads])
            torch.distributed.all_reduce(flat)
            flat /= idist.get_world_size()
            offset = 0
            for g in grads:
                g.copy_(flat[offset : offset + g.numel()].view_as(g))
                offset += g.numel()
        self.approximator_optimizer.step()
        return loss

    def train_approximator(self, noisy: torch.Tensor, dp_idx: torch.Tensor) -> torch.Tensor:
        """S steps of the approximator on ``noisy`` (S, B, N, M) with DP targets ``dp_idx`` (S, B, N); on CUDA
        with a capturable optimizer one step is captured as a CUDA graph (after 3 eager warm-up steps) and
        replayed. Returns the last step's loss."""
        self.approximator.train()
        s_num = noisy.shape[0]
        if not (self.cuda_graph and noisy.is_cuda and self._capturable()) or self._synced():
            for s in range(s_num):
                loss = self._approx_step(noisy[s], dp_idx[s])
            return loss.detach()
        key = tuple(noisy.shape[1:])
        start = 0
        if key not in self._graphs:
            warm = min(3, s_num)
            side = torch.cuda.Stream(device=noisy.device)
            side.wait_stream(torch.cuda.current_stream(noisy.device))
            with torch.cuda.stream(side):
                for s in range(warm):
                    loss = self._approx_step(noisy[s], dp_idx[s])
            torch.cuda.current_stream(noisy.device).wait_stream(side)
            start = warm
            static_x, static_t = noisy[0].clone(), dp_idx[0].clone()
            self.approximator_optimizer.zero_grad(set_to_none=True)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_loss = F.cross_entropy(self.approximator(static_x).transpose(1, 2), static_t)
                static_loss.backward()
                self.approximator_optimizer.step()
            self._graphs[key] = (graph, static_x, static_t, static_loss)
            if start == s_num:
                return loss.detach()
        graph, static_x, static_t, static_loss = self._graphs[key]
        for s in range(start, s_num):
            static_x.copy_(noisy[s])
            static_t.copy_(dp_idx[s])
            graph.replay()
        return static_loss.detach().clone()

    def _sg_eager(self, g: torch.Tensor, target: torch.Tensor):
        x = g.detach().requires_grad_(True)
        loss = self.loss_function(self.approximator(x).transpose(1, 2), target)
        (grad,) = torch.autograd.grad(loss, x)
        return loss.detach(), grad

    def synthetic_gradient(self, g: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss ``CE(F(g), target)`` and its gradient w.r.t. ``g`` through the frozen approximator (the
        synthetic gradient for the network); captured as a CUDA graph per shape on CUDA."""
        approx = self.approximator
        approx.eval()
        req = [p.requires_grad for p in approx.parameters()]
        for p in approx.parameters():
            p.requires_grad_(False)
        try:
            if not (self.cuda_graph and g.is_cuda):
                return self._sg_eager(g, target)
            key = ("sg",) + tuple(g.shape)
            if key not in self._graphs:
                static_g, static_t = g.detach().clone(), target.clone()
                side = torch.cuda.Stream(device=g.device)
                side.wait_stream(torch.cuda.current_stream(g.device))
                with torch.cuda.stream(side):
                    self._sg_eager(static_g, static_t)
                torch.cuda.current_stream(g.device).wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    x = static_g.requires_grad_(True)
                    static_loss = self.loss_function(approx(x).transpose(1, 2), static_t)
                    (static_grad,) = torch.autograd.grad(static_loss, x)
                self._graphs[key] = (graph, static_g, static_t, static_loss, static_grad)
            graph, static_g, static_t, static_loss, static_grad = self._graphs[key]
            with torch.no_grad():
                static_g.copy_(g.detach())
                static_t.copy_(target)
            graph.replay()
            return static_loss.detach().clone(), static_grad.clone()
        finally:
            for p, r in zip(approx.parameters(), req):
                p.requires_grad_(r)

    def _iteration(self, engine: "EDPCNNTrainer", batchdata: dict[str, torch.Tensor]) -> dict:  # type: ignore[override]
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        batch = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs)
        images, labels = batch[0], batch[1]
        if not isinstance(labels, torch.Tensor) or labels.ndim != 4 or labels.shape[1] != 1:
            raise ValueError(f"EDPCNNTrainer expects (B, 1, H, W) label masks, got {getattr(labels, 'shape', labels)}")
        images, labels = torch.as_tensor(images), torch.as_tensor(labels)
        dev, b = images.device, images.shape[0]
        gen = device_generator(self._generators, self._rank_seed(), dev)
        with torch.no_grad():
            if self.centre_jitter is None:
                centre = mask_centroid(labels).to(dev)
            else:
                centre = sample_centres_inside(labels, float(self.centre_jitter), gen)
            rot = (torch.rand(b, generator=gen, device=dev) * (2 * math.pi / self.star.num_rays)
                   if self.rotation_jitter else torch.zeros(b, device=dev))
            target = self.star.label_indices(labels, centre, rot)
        engine.state.output = {Keys.IMAGE: images, Keys.LABEL: labels}
        engine.network.train()
        f = engine.network(images)
        engine.state.output[Keys.PRED] = f
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        g = self.star.warp(f.float(), centre, rot, self.channel)  # (B, N, M)

        # (2) the approximator learns the DP on noisy copies of the (detached) warped map
        s_num = self.num_samples
        noise = torch.randn((s_num,) + tuple(g.shape), generator=gen, device=dev)
        noisy = g.detach()[None] + self.sigma * noise  # (S, B, N, M)
        dp_idx = dp_contour(noisy.flatten(0, 1), self.delta).view(s_num, b, -1)
        approx_loss = self.train_approximator(noisy, dp_idx)

        # (3) synthetic gradient: the network minimises CE(F(g), ground-truth indices) through the frozen F
        loss, grad_g = self.synthetic_gradient(g, target)
        engine.state.output[Keys.LOSS] = loss.detach()
        engine.state.output["approx_loss"] = approx_loss.detach()
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        g.backward(grad_g)
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        engine.optimizer.step()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)  # MONAI decollates and post-processes here
        return engine.state.output
