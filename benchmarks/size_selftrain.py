"""
Why size-matched masks need a reference that stays fixed for an epoch: three ways of fine-tuning a size-protocol
pre-trained network (``size_protocol.py``'s ``pretrain_m{m}_s{seed}`` checkpoint) by BCE to its own masks on all
training slices, sizes only, with random flips, Adam, one pass per epoch, scored on the validation and test splits
after every epoch:

- ``self``: plain self-training, the target is the network's own prediction ŷ = [a > 0] (no sizes);
- ``online``: :py:class:`weakseg.losses.SizeMatchedMaskLoss` on the logits of the step itself (no reference);
- ``epoch``: size-matched masks (:func:`weakseg.losses.size_matched_mask`) of the logits computed once at the
  start of each epoch, what ``train_size_matched.json`` does with a per-epoch teacher snapshot.

    python benchmarks/size_selftrain.py --modes self online epoch --seeds 0 1 --epochs 6
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    REPO, batched_logits, bench_args, simulated_annotations, emit, load_bundle_parser, machine_line, slice_scores, split_tensors, trained_network,
)


def run(mode: str, seed: int, m: int, epochs: int, lr: float, batch_size: int, output: str, dataset_dir: str) -> dict:
    from weakseg.losses import SizeMatchedMaskLoss, size_matched_mask
    from weakseg.transforms import object_size

    weak = simulated_annotations(dataset_dir, Path(output) / "annotations" / f"m{m}_s{seed}.json", seed,
                                 kinds=("size",), num_masks=m, mask_unit="slice")
    sel = dict(bundle_root=output, dataset_dir=dataset_dir, download=False, synthetic_fallback=False,
               annotation_file=weak, seed=seed)
    parser = load_bundle_parser("train.json", "pretrain.json", **sel)
    net = trained_network(parser, Path(output) / "output" / f"pretrain_m{m}_s{seed}" / "models" / "model.pt")
    data = {split: split_tensors(parser, split) for split in ("train", "val", "test")}
    x, labels = data["train"]
    sizes = object_size(labels[:, 0] > 0).double()  # the only supervision of the fine-tuning
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    bce, matched = torch.nn.BCEWithLogitsLoss(), SizeMatchedMaskLoss()

    def scores():
        out = {}
        for split in ("val", "test"):
            xs, ys = data[split]
            sc = slice_scores(batched_logits(net, xs) > 0, ys)
            out[split] = {"iou": sc["mean_slice_iou"], "E": sc["size_error"]}
        return out

    curve = [dict(epoch=0, **scores())]
    for epoch in range(1, epochs + 1):
        t0 = time.time()
        if mode != "online":
            a = batched_logits(net, x)
            targets = (a > 0) if mode == "self" else size_matched_mask(a, sizes)
        net.train()
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = perm[i : i + batch_size]
            xb = x[idx]
            yb = sizes[idx] if mode == "online" else targets[idx].float()
            for dim in (-1, -2):  # random flips of the whole batch, image and mask together
                if torch.rand(1, generator=gen) < 0.5:
                    xb = xb.flip(dim)
                    yb = yb if mode == "online" else yb.flip(dim)
            out = net(xb)
            loss = matched(out, yb) if mode == "online" else bce(out, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        curve.append(dict(epoch=epoch, seconds=time.time() - t0, **scores()))
        print(json.dumps(dict(mode=mode, seed=seed, **curve[-1])), flush=True)
    return dict(mode=mode, seed=seed, m=m, lr=lr, curve=curve)


def main() -> None:
    ap = bench_args(__doc__, device_arg=False)
    ap.add_argument("--modes", nargs="+", default=["self", "online", "epoch"], choices=["self", "online", "epoch"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--m", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch_size", type=int, default=64)
    ap.add_argument("--output", default=str(REPO / "benchmarks" / "output" / "size"),
                    help="bundle_root of size_protocol.py, holding output/pretrain_m{m}_s{seed}")
    ap.add_argument("--out_json", default=None)
    args = ap.parse_args()
    torch.manual_seed(0)
    rows = [run(mode, seed, args.m, args.epochs, args.lr, args.batch_size, args.output, args.dataset_dir)
            for seed in args.seeds for mode in args.modes]
    if args.out_json:
        Path(args.out_json).write_text(json.dumps(rows, indent=1))
    lines = [f"m = {args.m}, Adam {args.lr}, batch {args.batch_size}, {args.epochs} epochs; "
             f"machine: {machine_line(torch.device('cpu'))}", "",
             "| mode | seed | test IoU per epoch (0 = pre-trained) | test E per epoch |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['mode']} | {r['seed']} | " + ", ".join(f"{c['test']['iou']:.3f}" for c in r["curve"])
                     + " | " + ", ".join(f"{c['test']['E']:.2f}" for c in r["curve"]) + " |")
    emit(lines, args.out_md)


if __name__ == "__main__":
    main()
