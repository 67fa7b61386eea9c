"""
Speed of signed distance maps (boundary-loss input), one run, the same 1024 real hippocampus masks of 48x32:

- scipy per-slice loop: the MONAI/Kervadec map from two ``scipy.ndimage.distance_transform_edt`` calls per mask;
- MONAI ``BoundaryLoss.compute_distance_map`` (its own per-item loop over ``DistanceTransformEDT``);
- weakseg ``signed_distance_map``: one stacked scipy call on CPU (numpy backend), the batched exact
  min-plus EDT in torch (torch backend, CPU and GPU).
All outputs are checked equal to the scipy loop before timing.

    python benchmarks/distance_speed.py [--device cuda]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_args, device_sync, emit, machine_line, timeit, training_slices  # noqa: E402

from weakseg.transforms import signed_distance_map  # noqa: E402


def scipy_loop(masks: np.ndarray) -> np.ndarray:
    out = np.zeros(masks.shape, np.float32)
    for i, m in enumerate(masks):
        if m.any() and not m.all():
            out[i] = np.where(m, -(distance_transform_edt(m) - 1), distance_transform_edt(~m))
    return out


def main() -> None:
    ap = bench_args(__doc__)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--num_masks", type=int, default=1024)
    args = ap.parse_args()
    device, sync = device_sync(args.device)

    _, masks = training_slices(args.dataset_dir, args.num_masks)
    m_np = masks.numpy()

    ref = scipy_loop(m_np)
    from monai.losses import BoundaryLoss

    monai_map = BoundaryLoss().compute_distance_map(masks[:, None].float())
    np.testing.assert_allclose(monai_map[:, 0].numpy(), ref, atol=1e-4)
    rows = []
    t_scipy = timeit(lambda: scipy_loop(m_np), args.reps, lambda: None)
    rows.append(("scipy loop (2 x distance_transform_edt per mask)", "cpu", t_scipy))
    t_monai = timeit(lambda: BoundaryLoss().compute_distance_map(masks[:, None].float()), max(1, args.reps // 2), lambda: None)
    rows.append(("MONAI BoundaryLoss.compute_distance_map", "cpu", t_monai))
    for backend, dev in (("numpy", torch.device("cpu")), ("torch", torch.device("cpu"))) + (
        (("torch", device),) if device.type != "cpu" else ()
    ):
        x = masks.to(dev)
        s = sync if dev.type != "cpu" else (lambda: None)
        out = signed_distance_map(x, 2, backend=backend)
        np.testing.assert_allclose(out.cpu().numpy(), ref, atol=1e-4)
        rows.append((f"weakseg signed_distance_map, {backend} backend", dev.type, timeit(
            lambda: signed_distance_map(x, 2, backend=backend), args.reps, s)))
    lines = [
        f"Machine: {machine_line(device)}",
        "",
        f"| signed distance maps of {args.num_masks} real 48x32 masks | device | time | speed-up vs scipy loop |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {dev} | {t * 1e3:.1f} ms | {t_scipy / t:.1f}x |" for name, dev, t in rows]
    emit(lines, args.out_md)


if __name__ == "__main__":
    main()
