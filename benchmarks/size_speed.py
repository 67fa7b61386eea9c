"""
Speed of the size machinery, ratios measured in one run on real hippocampus masks:

1. object size of 4096 masks of 48x32: scipy per-slice loop (2 * distance_transform_cdt(chessboard).max())
   vs weakseg.transforms.object_size (numpy row scan on CPU, torch on GPU);
2. one training step of the bundle's UNet on a batch of 64 slices: BCE vs SizeLoss (n = 1) with every way of
   getting the flipped sizes (closed form for all pixels, pruned candidates measured, brute force), same
   network, batch and optimizer. All three give the same gradient; ``flips="auto"`` (the default) takes the
   closed form on GPUs and the pruned path on CPUs;
3. the same step with the size baselines and size-matched fine-tuning: SoftSizeLoss (soft erosions, backprop),
   SizeBoundsLoss (Kervadec et al.'s area bounds) and SizeMatchedMaskLoss with its snapshot teacher's forward pass
   (goal: each ≤ 1.5 × the BCE step). Steps are timed in turns (interleaved medians).

    python benchmarks/size_speed.py [--device cuda]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    bench_args, device_sync, emit, interleaved_medians, load_bundle_parser, machine_line, timeit, training_slices,
)

import copy  # noqa: E402

from weakseg.losses import SizeBoundsLoss, SizeLoss, SizeMatchedMaskLoss, SoftSizeLoss  # noqa: E402
from weakseg.transforms import object_size  # noqa: E402


def main() -> None:
    ap = bench_args(__doc__)
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    device, sync = device_sync(args.device)

    slices, masks = training_slices(args.dataset_dir, 4096)  # 4096 real masks (repeated where fewer)
    imgs = torch.stack([torch.as_tensor(s["image"]) for s in slices[:64]]).float()
    labels = torch.stack([torch.as_tensor(s["label"]) for s in slices[:64]]).float()
    sizes = object_size(labels[:, 0] > 0).float()

    m_np = masks.numpy()
    t_scipy = timeit(lambda: [ndi.distance_transform_cdt(np.pad(m, 1), metric="chessboard").max() for m in m_np],
                     max(1, args.reps // 2), lambda: None)
    m_dev = masks.to(device)
    t_ours = timeit(lambda: object_size(m_dev), args.reps, sync)
    t_torch_cpu = timeit(lambda: object_size(masks, backend="torch"), max(1, args.reps // 2), lambda: None)
    ref = np.array([2 * ndi.distance_transform_cdt(np.pad(m, 1), metric="chessboard").max() for m in m_np])
    assert np.array_equal(object_size(m_dev).cpu().numpy(), ref)

    net = load_bundle_parser("train.json").get_parsed_content("network_def").to(device)
    opt = torch.optim.Adam(net.parameters(), 1e-4)
    x, y, s = imgs.to(device), labels.to(device), sizes.to(device)
    bce = torch.nn.BCEWithLogitsLoss()
    auto = "closed form" if device.type != "cpu" else "pruned"
    losses = {
        "BCE": lambda out: bce(out, y),
        "SizeLoss n=1, closed form (every flip at once)": lambda out: SizeLoss(1, flips="closed_form")(out, s),
        "SizeLoss n=1, pruned (candidate flips measured)": lambda out: SizeLoss(1, flips="pruned")(out, s),
        "SizeLoss n=1, brute force (all 1536 flips measured)": lambda out: SizeLoss(1, flips="all")(out, s),
        f"SizeLoss n=8, default ({auto})": lambda out: SizeLoss(num_samples=8)(out, s),
        "SoftSizeLoss (soft erosions, backprop)": lambda out: soft(out, s),
        "SizeBoundsLoss (area bounds from the size)": lambda out: bounds(out, s),
        "SizeMatchedMaskLoss + snapshot teacher forward": lambda out: matched(out, (s, teacher_logits())),
    }
    soft, bounds, matched = SoftSizeLoss(), SizeBoundsLoss(upper_ratio=1.5, normalize=True), SizeMatchedMaskLoss()
    teacher = copy.deepcopy(net).eval()

    @torch.no_grad()
    def teacher_logits():
        return teacher(x)

    def step(loss_fn):
        def f():
            opt.zero_grad(set_to_none=True)
            loss_fn(net(x)).backward()
            opt.step()

        return f

    step_t = interleaved_medians({k: step(v) for k, v in losses.items()}, args.reps, sync)

    dev_name = machine_line(device)
    lines = [
        f"Machine: {dev_name}",
        "",
        "| object size of 4096 real 48x32 masks | time | speed-up vs scipy |",
        "|---|---|---|",
        f"| scipy loop (distance_transform_cdt chessboard, per slice) | {t_scipy * 1e3:.1f} ms | 1.0x |",
        f"| weakseg object_size on {device.type} | {t_ours * 1e3:.1f} ms | {t_scipy / t_ours:.1f}x |",
        f"| weakseg object_size, torch backend on CPU | {t_torch_cpu * 1e3:.1f} ms | {t_scipy / t_torch_cpu:.1f}x |",
        "",
        f"| training step, bundle UNet, batch 64 of 48x32, {device.type} | time | ratio to BCE step |",
        "|---|---|---|",
    ]
    for k, t in step_t.items():
        lines.append(f"| {k} | {t * 1e3:.0f} ms | {t / step_t['BCE']:.2f} |")
    emit(lines, args.out_md)


if __name__ == "__main__":
    main()
