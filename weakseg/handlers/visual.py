"""PNG pictures of a training run: validation overlays at the best epoch and learning curves."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events

__all__ = [
    "OverlayHandler",
    "LearningCurveHandler",
    "MontageHandler",
    "save_overlay_png",
    "save_montage_png",
    "default_predict",
]

logger = logging.getLogger("weakseg.engines")


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def default_predict(logits: torch.Tensor) -> torch.Tensor:
    """Binary mask from logits ``(B, C, H, W)``: sigmoid > 0.5 for one channel, argmax otherwise."""
    if logits.shape[1] == 1:
        return (logits > 0).to(torch.uint8)
    return logits.argmax(1, keepdim=True).to(torch.uint8)


def _atomic_savefig(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)


def _finish(fig, path: str | os.PathLike, title: str, fontsize: int) -> Path:
    """Title, atomic save and close of a figure; returns the path."""
    if title:
        fig.suptitle(title, fontsize=fontsize)
    _atomic_savefig(fig, Path(path))
    _plt().close(fig)
    return Path(path)


def save_overlay_png(
    images: np.ndarray, labels: np.ndarray, preds: np.ndarray, path: str | os.PathLike, title: str = ""
) -> Path:
    """
    Write a grid: one row per slice, columns image | ground truth | prediction (GT contour green, prediction red).
    Arrays are ``(N, H, W)``.
    """
    plt = _plt()
    n = len(images)
    fig, axes = plt.subplots(n, 3, figsize=(6.0, 2.0 * n), squeeze=False)
    for r in range(n):
        img = images[r]
        for c, (name, overlay) in enumerate((("image", None), ("ground truth", labels[r]), ("prediction", preds[r]))):
            ax = axes[r, c]
            ax.imshow(img, cmap="gray", interpolation="nearest")
            if overlay is not None:
                ax.imshow(np.ma.masked_where(overlay == 0, overlay), cmap="autumn" if c == 2 else "summer", alpha=0.45)
                ax.contour(labels[r], levels=[0.5], colors="lime", linewidths=0.8)
                if c == 2:
                    ax.contour(preds[r], levels=[0.5], colors="red", linewidths=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
    return _finish(fig, path, title, 10)


class OverlayHandler:
    """
    Attach to a validation evaluator: whenever its key metric reaches a new best, run ``network`` on a fixed set
    of validation slices and write ``output_file`` (image | GT | prediction), so the file always shows the best
    epoch. ``samples`` are dataset items (dicts with ``image_key``/``label_key`` tensors ``(C, H, W)``);
    ``num_samples`` evenly spaced ones are used. Predictions are ``predict(network(images))``, or
    ``inferer(images, network, centre=...)`` when an ``inferer`` is given (``centre_key``: the samples' centres).
    """

    def __init__(
        self,
        network: torch.nn.Module,
        samples: Sequence[dict],
        output_file: str | os.PathLike,
        num_samples: int = 6,
        image_key: str = "image",
        label_key: str = "label",
        predict: Callable[[torch.Tensor], torch.Tensor] = default_predict,
        device: str | torch.device | None = None,
        inferer: Callable | None = None,
        centre_key: str | None = None,
    ) -> None:
        if len(samples) == 0:
            raise ValueError("OverlayHandler: no validation samples to draw.")
        idx = np.unique(np.linspace(0, len(samples) - 1, min(num_samples, len(samples))).round().astype(int))
        self.samples = [samples[int(i)] for i in idx]
        self.network = network
        self.output_file = Path(output_file)
        self.image_key, self.label_key = image_key, label_key
        self.predict = predict
        self.device = device
        self.inferer, self.centre_key = inferer, centre_key

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def render(self, title: str = "") -> Path:
        dev = self.device or next(self.network.parameters()).device
        imgs = torch.stack([torch.as_tensor(s[self.image_key]).float() for s in self.samples]).to(dev)
        labels = torch.stack([torch.as_tensor(s[self.label_key]) for s in self.samples])
        was_training = self.network.training
        self.network.eval()
        with torch.no_grad():
            if self.inferer is None:
                preds = self.predict(self.network(imgs)).cpu()
            else:  # e.g. a DPContourInferer: masks from the object centre
                kw = {}
                if self.centre_key:
                    kw["centre"] = torch.stack([torch.as_tensor(s[self.centre_key]).float() for s in self.samples]).to(dev)
                preds = self.inferer(imgs, self.network, **kw).float().cpu()
        self.network.train(was_training)
        return save_overlay_png(
            imgs[:, 0].cpu().numpy(), labels[:, 0].numpy() > 0, preds[:, 0].numpy(), self.output_file, title
        )

    def __call__(self, engine: Engine) -> None:
        best_epoch = getattr(engine.state, "best_metric_epoch", -1)
        if best_epoch != engine.state.epoch:
            return
        metric = getattr(engine.state, "best_metric", float("nan"))
        self.render(title=f"best epoch {best_epoch}: {engine.state.key_metric_name} = {metric:.4f}")


class LearningCurveHandler:
    """
    Attach to the trainer: records the mean training loss per epoch and, when ``evaluator`` is given, its
    metrics after each validation; writes ``output_file`` (loss and metrics vs epoch) after every epoch.
    ``loss_transform`` extracts a float loss from ``engine.state.output``.
    """

    def __init__(
        self,
        output_file: str | os.PathLike,
        evaluator: Engine | None = None,
        loss_transform: Callable[[Any], float] | None = None,
    ) -> None:
        self.output_file = Path(output_file)
        self.evaluator = evaluator
        self.loss_transform = loss_transform or _default_loss
        self.loss_history: list[tuple[int, float]] = []
        self.metric_history: dict[str, list[tuple[int, float]]] = {}
        self._sum, self._n = 0.0, 0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._epoch)
        if self.evaluator is not None:
            self.evaluator.add_event_handler(Events.EPOCH_COMPLETED, self._validated)

    def _iteration(self, engine: Engine) -> None:
        self._sum += float(self.loss_transform(engine.state.output))
        self._n += 1

    def _validated(self, evaluator: Engine) -> None:
        for k, v in evaluator.state.metrics.items():
            if isinstance(v, (int, float)) or (isinstance(v, torch.Tensor) and v.numel() == 1):
                self.metric_history.setdefault(k, []).append((evaluator.state.epoch, float(v)))
        self.render()

    def _epoch(self, engine: Engine) -> None:
        if self._n:
            self.loss_history.append((engine.state.epoch, self._sum / self._n))
        self._sum, self._n = 0.0, 0
        self.render()

    def render(self) -> Path | None:
        if not self.loss_history and not self.metric_history:
            return None
        plt = _plt()
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
        if self.loss_history:
            e, v = zip(*self.loss_history)
            ax1.plot(e, v, "o-", ms=3)
        ax1.set_xlabel("epoch")
        ax1.set_ylabel("mean training loss")
        ax1.grid(alpha=0.3)
        for k, hist in self.metric_history.items():
            e, v = zip(*hist)
            ax2.plot(e, v, "o-", ms=3, label=k)
        ax2.set_xlabel("epoch")
        ax2.set_ylabel("validation")
        ax2.grid(alpha=0.3)
        if self.metric_history:
            ax2.legend(fontsize=8)
        fig.tight_layout()
        _atomic_savefig(fig, self.output_file)
        plt.close(fig)
        return self.output_file


def _default_loss(output: Any) -> float:
    if isinstance(output, list):
        output = output[0]
    if isinstance(output, dict):
        output = output["loss"]
    return float(output.item() if isinstance(output, torch.Tensor) else output)


def save_montage_png(image: np.ndarray, pred: np.ndarray, path: str | os.PathLike, axis: int = 0, num: int = 8,
                     title: str = "") -> Path:
    """
    A row of ``num`` slices along ``axis`` of a 3D ``image`` (X, Y, Z) with the predicted label ``pred`` drawn in
    red; slices are spread over the extent of the prediction (over the whole volume when it is empty).
    """
    plt = _plt()
    fg = np.nonzero(np.moveaxis(pred, axis, 0).reshape(pred.shape[axis], -1).any(1))[0]
    lo, hi = (fg.min(), fg.max()) if fg.size else (0, pred.shape[axis] - 1)
    idx = np.unique(np.linspace(lo, hi, num).round().astype(int))
    fig, axes = plt.subplots(1, len(idx), figsize=(1.6 * len(idx), 2.4), squeeze=False)
    for a, i in zip(axes[0], idx):
        img, lab = np.take(image, i, axis=axis), np.take(pred, i, axis=axis)
        a.imshow(img, cmap="gray", interpolation="nearest")
        if lab.any():
            a.contour(lab, levels=[0.5], colors="red", linewidths=0.8)
        a.set_title(f"slice {i}", fontsize=7)
        a.set_xticks([])
        a.set_yticks([])
    return _finish(fig, path, title, 8)


class MontageHandler:
    """
    Attach to an inference evaluator: after every iteration writes ``<output_dir>/<case>_montage.png`` for each
    volume of the batch (``image_key`` input, ``pred_key`` label), see :func:`save_montage_png`. ``enabled=False``
    attaches nothing (a switch that configs can set by name, e.g. ``"enabled": "@png_montage"``).
    """

    def __init__(self, output_dir: str | os.PathLike, image_key: str = "image", pred_key: str = "pred",
                 axis: int = 0, num_slices: int = 8, enabled: bool = True) -> None:
        self.output_dir = Path(output_dir)
        self.image_key, self.pred_key = image_key, pred_key
        self.axis, self.num_slices = axis, num_slices
        self.enabled = bool(enabled)

    def attach(self, engine: Engine) -> None:
        if self.enabled:
            engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        out = engine.state.output
        for item in out if isinstance(out, list) else [out]:
            img, pred = item[self.image_key], item[self.pred_key]
            name = Path(str(getattr(img, "meta", {}).get("filename_or_obj", f"case_{engine.state.iteration}"))).name
            stem = name.split(".nii")[0] if ".nii" in name else Path(name).stem
            image, label = torch.as_tensor(img)[0].cpu().numpy(), torch.as_tensor(pred)[0].cpu().numpy() > 0.5
            axis = self.axis
            if image.ndim == 2:  # a 2D image: one panel
                image, label, axis = image[None], label[None], 0
            save_montage_png(image, label, self.output_dir / f"{stem}_montage.png", axis, self.num_slices, title=name)
