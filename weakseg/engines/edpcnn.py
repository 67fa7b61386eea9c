"""EDPCNN training (synthetic gradients through the DP, Algorithm 2) and contour inference.

- :class:`EDPCNNTrainer`: a MONAI ``SupervisedTrainer`` whose iteration (i) warps the network's output map on a
  star pattern around a jittered centre with a random rotation, (ii) takes ``S`` steps of the approximator ``F``,
  each with cross-entropy to the DP's indices of a fresh noisy copy ``g + σε`` of the warped map, and (iii) trains the
  network with the cross-entropy of ``F(g)`` to the ground-truth indices, back-propagated through ``F``.
- :class:`CentreBatch`: ``prepare_batch`` passing the batch's ``centre`` to the contour inferers of
  :mod:`weakseg.inferers.contour` (``DPContourInferer``, ``CentreComponentInferer``, ``DPVolumeInferer``).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
import torch.nn.functional as F
from ignite import distributed as idist
from ignite.engine import Events
from monai.engines import SupervisedTrainer, default_prepare_batch
from monai.engines.utils import IterationEvents, PrepareBatchExtraInput
from monai.utils import CommonKeys as Keys

from weakseg.engines.augment import device_generator
from weakseg.kernels.contour import StarPattern, dp_contour
from weakseg.networks.edpcnn import DPApproximator
from weakseg.kernels.polygon import mask_centroid

logger = logging.getLogger(__name__)

__all__ = [
    "CentreBatch",
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


class CentreBatch(PrepareBatchExtraInput):
    """MONAI's ``PrepareBatchExtraInput`` with ``extra_keys={"centre": centre_key}``: returns
    ``(image, label, (), {"centre": centre})`` so that ``SupervisedEvaluator`` passes the centre (B, 2), float32,
    to the inferer. A batch without ``centre_key`` gets the label's centroid instead."""

    def __init__(self, centre_key: str = "centre") -> None:
        super().__init__(extra_keys={"centre": centre_key})
        self.centre_key = centre_key

    def __call__(self, batchdata: Any, device=None, non_blocking: bool = False, **kwargs: Any):
        if isinstance(batchdata, dict) and self.centre_key in batchdata:
            image, label, args, extra = super().__call__(batchdata, device, non_blocking, **kwargs)
            return image, label, args, {"centre": torch.as_tensor(extra["centre"]).to(image.device, torch.float32)}
        image, label = default_prepare_batch(batchdata, device, non_blocking, **kwargs)
        if not isinstance(label, torch.Tensor):
            raise KeyError(f"CentreBatch: the batch has no '{self.centre_key}' and no label to derive it from")
        return image, label, (), {"centre": mask_centroid(label).to(image.device)}


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
    starts, as :class:`weakseg.handlers.ResumeHandler` does, not in the middle of it.

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
