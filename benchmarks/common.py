"""Shared pieces of the benchmark scripts: machine description and test-split evaluation of a 2D slice model."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

import numpy as np
import torch

import weakseg
from weakseg.engines import predict_volume
from weakseg.metrics import slice_overlap_scores
from weakseg.transforms import SliceVolumed, object_size

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "bundle" / "configs"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "Task04_Hippocampus"


def bench_args(doc: str, device_arg: bool = True):
    """The options every benchmark takes: --dataset_dir, --out_md and (speed benchmarks) --device."""
    import argparse

    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset_dir", default=str(DEFAULT_DATA))
    ap.add_argument("--out_md", default=None, help="also write the markdown table to this file")
    if device_arg:
        ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return ap


def device_sync(device: torch.device):
    """(device, a function that waits for the device's queued work)"""
    device = torch.device(device)
    return device, (torch.cuda.synchronize if device.type == "cuda" else (lambda: None))


def timeit(fn, reps: int, sync) -> float:
    """Median wall time of ``reps`` calls of ``fn`` after one warm-up, waiting for the device with ``sync``."""
    return interleaved_medians({"fn": fn}, reps, sync)["fn"]


def interleaved_medians(fns: dict, reps: int, sync) -> dict:
    """Median wall time of each of ``fns`` (name → callable) over ``reps`` rounds that call them in turn (after one
    warm-up each), so that a machine whose speed drifts affects them alike. Each call is timed by
    ``torch.utils.benchmark.Timer``, which waits for queued CUDA work; ``sync`` waits after the warm-up."""
    import statistics

    from torch.utils.benchmark import Timer

    timers = {k: Timer("fn()", globals={"fn": fn}) for k, fn in fns.items()}
    for fn in fns.values():
        fn()
    sync()
    times = {k: [] for k in fns}
    for _ in range(reps):
        for k, t in timers.items():
            times[k].append(t.timeit(1).median)
    return {k: statistics.median(v) for k, v in times.items()}


def emit(lines: list[str], out_md: str | None) -> str:
    """Print the markdown lines and write them to ``out_md`` when given."""
    text = "\n".join(lines)
    print(text)
    if out_md:
        Path(out_md).write_text(text + "\n")
    return text


def machine_line(device: torch.device) -> str:
    import monai

    if device.type == "cuda":
        dev = torch.cuda.get_device_name(device)
    else:
        dev = f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    return (
        f"{datetime.date.today().isoformat()}, device: {dev}, python {platform.python_version()}, "
        f"torch {torch.__version__}, monai {monai.__version__}, weakseg {weakseg.__version__}"
    )


def load_bundle_parser(*config_names: str, **overrides):
    """ConfigParser over bundle configs (``train.json`` first) with ``overrides`` applied."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_meta(str(CONFIGS / "metadata.json"))
    parser.read_config([str(CONFIGS / n) for n in config_names])
    for k, v in overrides.items():
        parser[k] = v
    return parser


def simulated_annotations(dataset_dir: str, out: str | Path, seed: int, **kw) -> str:
    """The protocol's first step: write the weak-annotation file simulated from the masks of ``dataset_dir`` (split
    by volume with ``seed``; ``kw``: :func:`weakseg.annotations.simulate_weak_annotations` options, e.g.
    ``num_masks``, ``mask_unit``, ``box_fraction``, ``kinds``) and return its path. Training reads only this file."""
    from weakseg.annotations import dataset_sections, simulate_weak_annotations

    sections, labels = dataset_sections(dataset_dir, seed=seed)
    simulate_weak_annotations(sections, dataset_dir, labels, seed=kw.pop("mask_seed", seed), out=out, **kw)
    return str(out)


def training_slices(dataset_dir: str, num_masks: int) -> tuple[list[dict], torch.Tensor]:
    """The bundle's training slices of ``dataset_dir`` and ``num_masks`` of their masks (N, H, W) bool,
    repeated in order where there are fewer slices."""
    parser = load_bundle_parser("train.json", dataset_dir=dataset_dir, download=False)
    splits = parser.get_parsed_content("splits")
    slices = weakseg.data.volumes_to_slices(splits["train"], parser.get_parsed_content("volume_transforms"))
    masks = torch.stack([torch.as_tensor(s["label"])[0] > 0 for s in slices])
    return slices, masks[torch.arange(num_masks) % len(masks)]


def volume_part(volume_transforms):
    """The volume-level part of the bundle's ``volume_transforms`` (everything before ``SliceVolumed``)."""
    from monai.transforms import Compose

    ts = []
    for t in volume_transforms.transforms:
        if isinstance(t, SliceVolumed):
            break
        ts.append(t)
    return Compose(ts)


def trained_network(parser, ckpt) -> torch.nn.Module:
    """The config's ``network_def`` on its ``device`` with the weights of ``ckpt`` (``weakseg.engines.load_pretrained``)."""
    net = parser.get_parsed_content("network_def").to(parser.get_parsed_content("device"))
    return weakseg.engines.load_pretrained(net, ckpt)


def split_tensors(parser, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """Images (float) and labels (N, C, H, W) of the ``split`` slices as the bundle prepares them."""
    items = weakseg.data.volumes_to_slices(parser.get_parsed_content("splits")[split],
                                           parser.get_parsed_content("volume_transforms"))
    imgs = torch.stack([torch.as_tensor(s["image"]) for s in items]).float()
    return imgs, torch.stack([torch.as_tensor(s["label"]) for s in items])


@torch.no_grad()
def batched_logits(network, imgs: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Logits ``network(x)`` (N, 1, H, W) of images (N, C, H, W) in eval mode, run in batches on the network's
    device, returned on the CPU."""
    device = next(network.parameters()).device
    network.eval()
    return torch.cat([network(imgs[i : i + batch_size].to(device)).cpu() for i in range(0, len(imgs), batch_size)])


def split_logits(network, parser, split: str = "test", batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``network(x)`` (N, 1, H, W) of the ``split`` slices (:func:`batched_logits`) and their labels (both on
    the CPU)."""
    imgs, labels = split_tensors(parser, split)
    return batched_logits(network, imgs, batch_size), labels


def predict_split(network, parser, split: str = "test", batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Binary predictions ``network(x) > 0`` (N, 1, H, W) on the ``split`` slices, and their labels (on the CPU)."""
    logits, labels = split_logits(network, parser, split, batch_size)
    return logits > 0, labels


def slice_scores(preds: torch.Tensor, labels: torch.Tensor) -> dict:
    """Mean slice IoU/Dice, pooled IoU/Dice (:func:`weakseg.metrics.slice_overlap_scores`) and the size error E
    (eq. 22) of binary predictions against labels, both (N, 1, H, W)."""
    res = slice_overlap_scores(preds, labels)
    g_pred = object_size(preds[:, 0]).double()
    g_true = object_size(labels[:, 0] > 0).double()
    res["size_error"] = float(((g_pred - g_true) ** 2).mean())
    return res


@torch.no_grad()
def evaluate_test(network, parser, split: str = "test", batch_size: int = 512, volumes_3d: bool = True) -> dict:
    """
    Scores of ``network`` on ``split`` volumes: slice-level (kept slices, as in training) mean slice IoU,
    pooled IoU/Dice, size error E (eq. 22); and 3D Dice per volume after slice-wise prediction of *all* slices and restacking.
    """
    res = slice_scores(*predict_split(network, parser, split, batch_size))
    if not volumes_3d:
        return res
    vol = volume_part(parser.get_parsed_content("volume_transforms"))
    axis = parser.get_parsed_content("slice_axis")
    size = parser.get_parsed_content("spatial_size")
    dice3d = []
    for item in parser.get_parsed_content("splits")[split]:
        d = vol(dict(item))
        pred = predict_volume(network, d["image"], axis=axis, spatial_size=size)
        g = torch.as_tensor(d["label"]) > 0
        p = pred > 0
        dice3d.append(float(2 * (p & g).sum() / (p.sum() + g.sum())))
    res["dice3d_mean"] = float(np.mean(dice3d))
    res["dice3d_std"] = float(np.std(dice3d))
    res["num_volumes"] = len(dice3d)
    return res
