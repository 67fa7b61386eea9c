"""
End-to-end supervised epoch vs pure model time, and inference throughput, measured in one run.

1. One epoch over all training slices through the bundle's own data loader (random flips, collation), vs the
   same number of optimisation steps on batches already on the device: overhead = epoch / model - 1.
2. Inference on the 130 imagesTs volumes with the bundle's inference pipeline (load, normalise, SliceInferer,
   post-processing), without writing files: volumes per second.

    python benchmarks/pipeline_speed.py [--device cuda]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_args, device_sync, emit, load_bundle_parser, machine_line  # noqa: E402


def main() -> None:
    ap = bench_args(__doc__)
    ap.add_argument("--num_workers", type=int, default=0)
    args = ap.parse_args()
    device, sync = device_sync(args.device)

    parser = load_bundle_parser("train.json", "inference.json", dataset_dir=args.dataset_dir, download=False,
                                device=f"$torch.device('{device}')", num_workers=args.num_workers,
                                input_dir=str(Path(args.dataset_dir) / "imagesTs"), png_montage=False)
    # inference without writing files: keep sigmoid + threshold, drop SaveImaged
    parser["infer#postprocessing#transforms"] = parser["infer#postprocessing#transforms"][:2]
    loader = parser.get_parsed_content("train#dataloader")
    prepare = parser.get_parsed_content("train#prepare_batch")  # the trainer's: copy to device + random flips
    net = parser.get_parsed_content("network")
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x), y).backward()
        opt.step()

    batches = [(b["image"].to(device), b["label"].to(device)) for b in loader]  # warm-up pass and device copies
    for x, y in batches[:3]:
        step(x, y)
    sync()
    t = time.perf_counter()
    for b in loader:  # what the trainer does: load, collate, copy, augment on the device, step
        step(*prepare(b, device, non_blocking=True)[:2])
    sync()
    t_epoch = time.perf_counter() - t
    t = time.perf_counter()
    for x, y in batches:
        step(x, y)
    sync()
    t_model = time.perf_counter() - t

    ev = parser.get_parsed_content("infer#evaluator")
    n_vol = len(parser.get_parsed_content("infer#datalist"))
    t = time.perf_counter()
    ev.run()
    sync()
    t_inf = time.perf_counter() - t

    lines = [
        f"Machine: {machine_line(device)}; DataLoader num_workers={args.num_workers}",
        "",
        "| measure | value |",
        "|---|---|",
        f"| training slices, batches of 64 | {len(loader.dataset)} slices, {len(batches)} batches |",
        f"| epoch through the bundle data loader | {t_epoch:.2f} s |",
        f"| same steps on batches already on {device.type} | {t_model:.2f} s |",
        f"| data loading overhead | {100 * (t_epoch / t_model - 1):.1f} % |",
        f"| inference, {n_vol} imagesTs volumes (load, normalise, SliceInferer, threshold) | "
        f"{t_inf:.1f} s = {n_vol / t_inf:.2f} volumes/s |",
    ]
    emit(lines, args.out_md)


if __name__ == "__main__":
    main()
