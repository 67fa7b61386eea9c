"""
End-to-end supervised epoch vs pure model time, and inference throughput, measured in one run.

1. One epoch over all training slices through the bundle's own data loader (``weakseg.data.training_loader``:
   slices stacked once on the device, batches by indexing; random flips on the device), and through a MONAI
   ``DataLoader`` (per-batch collation, pinned copies) for comparison, vs the same number of optimisation steps
   on batches already on the device: overhead = epoch / model - 1. Also one pass of each loader alone.
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

    parser = load_bundle_parser("inference.json", "train.json", dataset_dir=args.dataset_dir, download=False,
                                device=f"$torch.device('{device}')", num_workers=args.num_workers,
                                input_dir=str(Path(args.dataset_dir) / "imagesTs"), png_montage=False)
    # inference without writing files: keep sigmoid + threshold, drop SaveImaged
    parser["postprocessing#transforms"] = parser["postprocessing#transforms"][:2]
    parser["handlers"] = []  # an untrained network: no CheckpointLoader, montage or progress bar
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
    from monai.data import DataLoader

    dl = DataLoader(parser.get_parsed_content("train#dataset"), batch_size=loader.batch_size, shuffle=True,
                    num_workers=args.num_workers, pin_memory=device.type == "cuda")

    def epoch(ld):
        sync()
        t = time.perf_counter()
        for b in ld:  # what the trainer does: load, (collate, copy,) augment on the device, step
            step(*prepare(b, device, non_blocking=True)[:2])
        sync()
        return time.perf_counter() - t

    def pass_alone(ld):
        sync()
        t = time.perf_counter()
        for b in ld:
            prepare(b, device, non_blocking=True)
        sync()
        return time.perf_counter() - t

    t_epoch, t_epoch_dl = epoch(loader), epoch(dl)
    t_pass, t_pass_dl = pass_alone(loader), pass_alone(dl)
    t = time.perf_counter()
    for x, y in batches:
        step(x, y)
    sync()
    t_model = time.perf_counter() - t

    ev = parser.get_parsed_content("evaluator")
    n_vol = len(parser.get_parsed_content("datalist"))
    t = time.perf_counter()
    ev.run()
    sync()
    t_inf = time.perf_counter() - t

    lines = [
        f"Machine: {machine_line(device)}; DataLoader num_workers={args.num_workers}",
        "",
        "| measure | value |",
        "|---|---|",
        f"| training slices, batches of {loader.batch_size} | {len(loader.dataset)} slices, {len(batches)} batches |",
        f"| bundle loader: `{type(loader).__name__}` |  |",
        f"| epoch through the bundle loader | {t_epoch:.2f} s |",
        f"| epoch through a MONAI DataLoader (collation, pinned copies) | {t_epoch_dl:.2f} s |",
        f"| same steps on batches already on {device.type} | {t_model:.2f} s |",
        f"| data loading overhead, bundle loader | {100 * (t_epoch / t_model - 1):.1f} % |",
        f"| data loading overhead, MONAI DataLoader | {100 * (t_epoch_dl / t_model - 1):.1f} % |",
        f"| one pass of the loader alone (with the flips): bundle / DataLoader | "
        f"{1000 * t_pass / len(batches):.2f} / {1000 * t_pass_dl / len(batches):.2f} ms per batch |",
        f"| inference, {n_vol} imagesTs volumes (load, normalise, SliceInferer, threshold) | "
        f"{t_inf:.1f} s = {n_vol / t_inf:.2f} volumes/s |",
    ]
    emit(lines, args.out_md)


if __name__ == "__main__":
    main()
