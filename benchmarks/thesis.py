"""
Experiments 1-3 of the thesis "Medical image segmentation with deep learning" (Bakos, ELTE 2022) with the bundle
(train.json + train_thesis.json [+ train_covid.json]), on real data:

  Experiment 1: U-Net vs Attention U-Net vs Residual Attention U-Net, focal Tversky loss;
  Experiment 2: Lovász hinge vs Jaccard (soft IoU) loss, Residual Attention U-Net;
  Experiment 3: BCE, Tversky, boundary loss and their constant / linear combinations with the boundary loss.

Datasets: "hippocampus" (MSD Task04 slices, volume-level split) and "covid" (COVID-QU-Ex infection masks of the
COVID-19 images in ../shared, image-level stratified split 60/20/20). Each run keeps the checkpoint with the best
validation Dice; it is scored on the held-out test split: pixel-pooled balanced accuracy, ROC-AUC and AP, mean
per-image Dice and Jaccard, mean per-image modified AHD (95th percentile, pixels; images with an empty prediction
are counted separately).

    python benchmarks/thesis.py --dataset hippocampus --seeds 0 1 2 --out_jsonl rows.jsonl
    python benchmarks/thesis.py --report rows.jsonl other_rows.jsonl --out_md table.md
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CONFIGS, REPO, bench_args, emit, load_bundle_parser, machine_line, split_logits, trained_network  # noqa: E402

from weakseg.metrics import average_hausdorff_distance, slice_overlap_scores  # noqa: E402

# (network, loss, second loss, schedule)
EXPERIMENTS = {
    1: [("unet", "focal_tversky", None, None), ("attention_unet", "focal_tversky", None, None),
        ("res_attention_unet", "focal_tversky", None, None)],
    2: [("res_attention_unet", "lovasz", None, None), ("res_attention_unet", "jaccard", None, None)],
    3: [("res_attention_unet", "bce", None, None), ("res_attention_unet", "tversky", None, None),
        ("res_attention_unet", "boundary", None, None),
        ("res_attention_unet", "bce", "boundary", "constant"), ("res_attention_unet", "bce", "boundary", "linear"),
        ("res_attention_unet", "tversky", "boundary", "constant"),
        ("res_attention_unet", "tversky", "boundary", "linear")],
}
DATASETS = {
    "hippocampus": dict(configs=["train.json", "train_thesis.json"], epochs=10, val_interval=1,
                        data=REPO.parent / "shared" / "data" / "Task04_Hippocampus"),
    "covid": dict(configs=["train.json", "train_thesis.json", "train_covid.json"], epochs=50, val_interval=5,
                  data=REPO.parent / "shared" / "data" / "COVID-QU-Ex_infection_sample"),
}
METRICS = ("ba", "auc", "ap", "dice", "jaccard", "mahd")


def variant_name(net, loss, loss2, sched) -> str:
    return f"{net}/{loss}" + (f"+{loss2}({sched})" if loss2 else "")


def overrides(args, net, loss, loss2, sched, seed, root: Path, epochs: int, val_interval: int) -> dict:
    o = {
        "bundle_root": str(root), "dataset_dir": args.dataset_dir or str(DATASETS[args.dataset]["data"]),
        "download": False, "synthetic_fallback": False, "seed": seed, "max_epochs": epochs,
        "val_interval": val_interval, "network_name": net, "loss_name": loss, "loss2_name": loss2,
        "num_workers": args.num_workers, "max_train_volumes": args.max_train_volumes,
        "train#handlers#6#_disabled_": True,  # per-iteration progress bar: too verbose for a batch of runs
    }
    if loss2:
        o.update(alpha_schedule=sched, combine_mode="convex", alpha=0.5 if sched == "constant" else 1.0 / epochs)
    if args.no_mlflow:
        o.update({"train#handlers#0#_disabled_": True, "validate#handlers#0#_disabled_": True})
    if args.lean_validation:  # model selection needs only the key metric (Dice); the test scoring has them all
        o["validate#additional_metrics"] = {}
    if args.no_plots:
        o.update({"train#handlers#4#_disabled_": True, "validate#handlers#2#_disabled_": True})
    return o


@torch.no_grad()
def score(parser, ckpt: Path) -> dict:
    from monai.metrics import compute_average_precision, compute_roc_auc

    logits, labels = split_logits(trained_network(parser, ckpt), parser, "test", batch_size=64)
    labels = labels.float()
    probs = torch.sigmoid(logits)
    pred = (probs > 0.5).float()
    g = labels > 0
    p = pred > 0
    tp, tn = (p & g).sum().item(), (~p & ~g).sum().item()
    ba = 0.5 * (tp / max(g.sum().item(), 1) + tn / max((~g).sum().item(), 1))
    overlap = slice_overlap_scores(pred, labels)  # per-image Dice / IoU, 1 where both are empty
    flat_p, flat_y = probs.reshape(-1), labels.reshape(-1)
    mahd = average_hausdorff_distance(pred, labels, include_background=True, variant="modified")[:, 0]
    defined = ~torch.isnan(mahd)
    return dict(
        ba=ba, auc=float(compute_roc_auc(flat_p, flat_y)), ap=float(compute_average_precision(flat_p, flat_y)),
        dice=overlap["mean_slice_dice"], jaccard=overlap["mean_slice_iou"],
        mahd=float(mahd[defined].mean()) if defined.any() else float("nan"),
        mahd_undefined=int((~defined).sum()), num_test=len(labels),
    )


def run_one(args, exp, variant, seed) -> dict:
    from monai.bundle import run

    net, loss, loss2, sched = variant
    cfg = DATASETS[args.dataset]
    epochs = args.epochs or cfg["epochs"]
    tag = variant_name(*variant).replace("/", "_").replace("+", "_").replace("(", "_").replace(")", "")
    root = Path(args.output) / args.dataset / f"{tag}_s{seed}"
    o = overrides(args, net, loss, loss2, sched, seed, root, epochs, min(cfg["val_interval"], epochs))
    t0 = time.time()
    run("training", config_file=[str(CONFIGS / c) for c in cfg["configs"]], meta_file=str(CONFIGS / "metadata.json"),
        logging_file=str(CONFIGS / "logging.conf"), **o)
    t_train = time.time() - t0
    parser = load_bundle_parser(*cfg["configs"], **{k: v for k, v in o.items() if "#" not in k})
    method = parser.get_parsed_content("method")
    res = score(parser, root / "output" / method / "models" / "model.pt")
    return dict(dataset=args.dataset, exp=exp, variant=variant_name(*variant), seed=seed, epochs=epochs,
                train_s=round(t_train, 1), device=str(parser.get_parsed_content("device")), **res)


def fmt(vals, digits=3) -> str:
    vals = [v for v in vals if v == v]
    if not vals:
        return "n/a"
    return f"{np.mean(vals):.{digits}f} ({np.std(vals):.{digits}f})" if len(vals) > 1 else f"{vals[0]:.{digits}f}"


def report(rows: list[dict]) -> list[str]:
    lines = []
    for ds in ("covid", "hippocampus"):
        dr = [r for r in rows if r["dataset"] == ds]
        if not dr:
            continue
        seeds = sorted({r["seed"] for r in dr})
        ex = dr[0]
        lines += ["", f"**{ds}** — test split ({ex['num_test']} {'images' if ds == 'covid' else 'slices'} for seed "
                      f"{ex['seed']}), {ex['epochs']} epochs, seeds {seeds}, device {ex['device']}, mean (std) over seeds; "
                      "MAHD in pixels (lower is better)", ""]
        for exp in sorted({r["exp"] for r in dr}):
            lines += [f"Experiment {exp}", "", "| network/loss | BA | AUC | AP | DSC | Jaccard | MAHD | runs | train s |",
                      "|---|---|---|---|---|---|---|---|---|"]
            er = [r for r in dr if r["exp"] == exp]
            for v in dict.fromkeys(r["variant"] for r in er):
                vr = [r for r in er if r["variant"] == v]
                undefined = sum(r["mahd_undefined"] for r in vr)
                mahd = fmt([r["mahd"] for r in vr], 2) + (f" [{undefined} empty]" if undefined else "")
                lines.append(f"| {v} | " + " | ".join(fmt([r[m] for r in vr]) for m in METRICS[:-1]) +
                             f" | {mahd} | {len(vr)} | {np.mean([r['train_s'] for r in vr]):.0f} |")
            lines.append("")
    return lines


def main() -> None:
    ap = bench_args(__doc__, device_arg=False)
    ap.set_defaults(dataset_dir=None)
    ap.add_argument("--dataset", choices=sorted(DATASETS), default="hippocampus")
    ap.add_argument("--experiments", nargs="+", type=int, default=[1, 2, 3])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--epochs", type=int, default=None, help="override the dataset's epoch budget")
    ap.add_argument("--num_workers", type=int, default=0)
    ap.add_argument("--max_train_volumes", type=int, default=None, help="fewer training volumes/images (quick checks)")
    ap.add_argument("--variants", nargs="*", default=None, help="run only these variant names (as in the tables)")
    ap.add_argument("--no_mlflow", action="store_true", help="skip MLflow logging (e.g. where it is not installed)")
    ap.add_argument("--no_plots", action="store_true", help="skip the PNG handlers (e.g. without matplotlib)")
    ap.add_argument("--lean_validation", action="store_true",
                    help="validate with Dice only (AUC/AP per epoch cost seconds of Python loops in MONAI)")
    ap.add_argument("--output", default=str(REPO / "benchmarks" / "output" / "thesis"))
    ap.add_argument("--out_jsonl", default=None, help="append one JSON line per run")
    ap.add_argument("--report", nargs="*", default=None, help="only write the table from these JSON-lines files")
    args = ap.parse_args()
    if args.report is not None:
        rows = [json.loads(line) for f in args.report for line in Path(f).read_text().splitlines() if line.strip()]
        emit(report(rows), args.out_md)
        return
    rows, done = [], set()
    for seed in args.seeds:
        for exp in args.experiments:
            for variant in EXPERIMENTS[exp]:
                key = (variant, seed)
                if key in done or (args.variants and variant_name(*variant) not in args.variants):
                    continue
                done.add(key)
                row = run_one(args, exp, variant, seed)
                print(json.dumps(row), flush=True)
                rows.append(row)
                if args.out_jsonl:
                    with open(args.out_jsonl, "a") as f:
                        f.write(json.dumps(row) + "\n")
    print(f"Machine: {machine_line(torch.device('cuda' if torch.cuda.is_available() else 'cpu'))}")
    emit(report(rows), args.out_md)


if __name__ == "__main__":
    main()
