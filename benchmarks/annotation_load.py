"""Reading the weak labels from an annotation file does not slow the size stage down.

Two ways to build the size stage's training data on the same volumes, both through the bundle (``train.json`` +
``train_size.json``): from the annotation file (``WeakSliced``, what the configs do) and the former in-pipeline
derivation (the supervised slices, then ``SizeFromMaskd`` on each mask, the mask dropped). The script checks that
both give the same slices and sizes, times the building once each, and times epochs of the size stage's training
step (the bundle's loader, ``SizeLoss`` and Adam on the bundle's network) on each, interleaved, and reports the
ratio of the median epoch times.

    python benchmarks/annotation_load.py --dataset_dir ../shared/data/Task04_Hippocampus --epochs 3
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_args, device_sync, emit, interleaved_medians, load_bundle_parser, machine_line  # noqa: E402
from common import simulated_annotations  # noqa: E402

OLD_SPLITS = "$weakseg.data.split_by_volume(@msd.datalist(), fractions=@split_fractions, seed=@seed)"
OLD_SLICES = ("$[weakseg.transforms.SizeFromMaskd('label', drop_mask=True)(s) for s in "
              "weakseg.data.volumes_to_slices(@train#volumes, @volume_transforms)]")


def main() -> None:
    ap = bench_args(__doc__)
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per path (interleaved), after one warm-up")
    ap.add_argument("--max_train_volumes", type=int, default=None)
    args = ap.parse_args()
    device, sync = device_sync(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        ann = simulated_annotations(args.dataset_dir, Path(tmp) / "sizes.json", 0, kinds=["size"], num_masks=64,
                                    mask_unit="slice")
        common = dict(dataset_dir=args.dataset_dir, download=False, annotation_file=ann, device=str(device),
                      max_train_volumes=args.max_train_volumes, bundle_root=tmp)
        parsers = {"annotation file": load_bundle_parser("train.json", "train_size.json", **common),
                   "derived from masks": load_bundle_parser("train.json", "train_size.json", **common)}
        parsers["derived from masks"]["splits"] = OLD_SPLITS
        parsers["derived from masks"]["train#slices"] = OLD_SLICES
        build, slices = {}, {}
        for name, p in parsers.items():
            t = time.perf_counter()
            slices[name] = p.get_parsed_content("train#slices")
            build[name] = time.perf_counter() - t
        a, b = slices.values()
        assert len(a) == len(b) and all(torch.equal(torch.as_tensor(x["image"]), torch.as_tensor(y["image"])) and
                                        float(x["size"]) == float(y["size"]) for x, y in zip(a, b)), \
            "the two paths give different training data"

        def epoch_fn(p):
            torch.manual_seed(0)
            net = p.get_parsed_content("network")
            loader, loss = p.get_parsed_content("train#dataloader"), p.get_parsed_content("loss")
            opt = torch.optim.Adam(net.parameters(), lr=1e-4)

            def run():
                for batch in loader:
                    x = torch.as_tensor(batch["image"]).to(device)
                    s = torch.as_tensor(batch["size"]).to(device)
                    opt.zero_grad(set_to_none=True)
                    loss(net(x), s).backward()
                    opt.step()
            return run

        times = interleaved_medians({k: epoch_fn(p) for k, p in parsers.items()}, args.epochs, sync)
    n = len(a)
    r = times["annotation file"] / times["derived from masks"]
    lines = [f"Machine: {machine_line(device)}", "",
             f"Size stage, {n} training slices, batch {parsers['annotation file']['batch_size']}, "
             f"median of {args.epochs} interleaved epochs after a warm-up:", "",
             "| training data | building the slices (s) | epoch (s) |", "|---|---|---|"]
    lines += [f"| {k} | {build[k]:.1f} | {times[k]:.2f} |" for k in parsers]
    lines += ["", f"epoch time, annotation file / derived from masks: **{r:.3f}** (goal ≤ 1.05)"]
    emit(lines, args.out_md)


if __name__ == "__main__":
    main()
