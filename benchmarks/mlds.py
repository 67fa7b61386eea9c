"""Every annotation counts on hippocampus slices: baseline vs multi-label deep supervision vs mean-taught deep
supervision, with k fully annotated training volumes and the rest given as boxes or image-level labels.

Each run is the bundle (`train.json` + `train_mlds.json`) in a subprocess; the best-validation-Dice checkpoint
is scored on the test volumes' slices (every method trains the same number of iterations,
``--epochs`` × ``--iterations_per_epoch`` of batch 64): IoU of hippocampus head (1) and body (2), pooled over the test slices,
and their mean. Baseline: only the k mask volumes, heads weighted 0 (plain full-resolution BCE). DS: all
volumes, k with masks, the others half boxes, half image labels, boxes on every level as in the paper. MT: DS +
mean teacher (evaluated with the teacher). ``ds_box1`` / ``mt_box1``: the same with boxes kept off the
full-resolution output (``box_min_level`` 1, the bundle's default).

    python benchmarks/mlds.py --ks 3 6 12 24 all --seeds 0 1 2 --epochs 10 --out_jsonl r.jsonl
    python benchmarks/mlds.py --report r.jsonl --out_md table.md --out_png mlds.png
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    CONFIGS, DEFAULT_DATA, REPO, bench_args, emit, load_bundle_parser, machine_line, simulated_annotations,
)

METHODS = {
    "baseline": ["--use_weak", "False", "--level_weights", "[1.0, 0.0, 0.0]"],
    # the paper's methods: boxes supervise every level like masks
    "ds": ["--box_min_level", "0"],
    "mt": ["--box_min_level", "0", "--mean_teacher", "True", "--evaluate_teacher", "True"],
    # the bundle's default: boxes kept off the full-resolution output (loss box_min_level=1)
    "ds_box1": ["--box_min_level", "1"],
    "mt_box1": ["--box_min_level", "1", "--mean_teacher", "True", "--evaluate_teacher", "True"],
    # ds_box1 with MONAI DeepSupervisionLoss's nearest-resized targets instead of max-pooled ones
    "ds_box1_nearest": ["--box_min_level", "1", "--target_mode", "nearest"],
}
PAPER_METHODS = ["baseline", "ds", "mt"]


def run_one(args, k, method, seed, root: Path) -> dict:
    # simulate -> train from the file: k volumes keep their masks, box_fraction of the rest get boxes
    weak = simulated_annotations(args.dataset_dir, root / f"k{k}_box{args.box_fraction}.json", seed,
                                 num_masks="all" if str(k) == "all" else int(k), box_fraction=args.box_fraction)
    cmd = [sys.executable, "-m", "monai.bundle", "run", "training",
           "--config_file", f"['{CONFIGS / 'train.json'}','{CONFIGS / 'train_mlds.json'}']",
           "--meta_file", str(CONFIGS / "metadata.json"), "--logging_file", str(CONFIGS / "logging.conf"),
           "--bundle_root", str(root), "--dataset_dir", args.dataset_dir, "--download", "False",
           "--max_epochs", str(args.epochs), "--seed", str(seed), "--annotation_file", weak,
           "--iterations_per_epoch", str(args.iterations_per_epoch),
           *METHODS[method]]
    if args.channels:
        cmd += ["--network_def#channels", str(list(args.channels))]
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{method} k={k} seed={seed} failed:\n{proc.stderr[-3000:]}")
    ckpt = next((root / "output").glob("mlds_*/models/model.pt"))
    overrides = {"network_def#channels": list(args.channels)} if args.channels else {}
    parser = load_bundle_parser("train.json", "train_mlds.json", dataset_dir=args.dataset_dir, download=False,
                                seed=seed, annotation_file=weak, **overrides)
    net = parser.get_parsed_content("network")
    net.load_state_dict(torch.load(ckpt, weights_only=True, map_location="cpu"))
    net.eval()
    import weakseg

    items = weakseg.data.volumes_to_slices(parser.get_parsed_content("splits")["test"],
                                           parser.get_parsed_content("volume_transforms"))
    imgs = torch.stack([torch.as_tensor(s["image"]) for s in items]).float()
    labs = torch.stack([torch.as_tensor(s["label"]) for s in items]).long()[:, 0]
    dev = next(net.parameters()).device
    with torch.no_grad():
        pred = torch.cat([net(imgs[i : i + 512].to(dev)).argmax(1).cpu() for i in range(0, len(imgs), 512)])
    iou = {}
    for c in (1, 2):
        inter = ((pred == c) & (labs == c)).sum().item()
        union = ((pred == c) | (labs == c)).sum().item()
        iou[c] = inter / max(union, 1)
    return {"k": k, "method": method, "seed": seed, "epochs": args.epochs, "iterations": args.epochs * args.iterations_per_epoch, "iou_head": iou[1], "iou_body": iou[2],
            "miou": (iou[1] + iou[2]) / 2, "test_slices": len(items),
            "channels": list(args.channels) if args.channels else None, "minutes": (time.time() - t0) / 60,
            "device": str(dev)}


NAMES = {"baseline": "baseline (masks only)", "ds": "deep supervision", "mt": "mean-taught deep supervision",
         "ds_box1": "deep supervision, boxes off the finest level",
         "mt_box1": "mean-taught deep supervision, boxes off the finest level",
         "ds_box1_nearest": "deep supervision, boxes off the finest level, nearest-resized targets"}


def runs_of(recs, k, method) -> list[dict]:
    """The records of one k (compared as a string: "3", "all") and one method."""
    return [r for r in recs if str(r["k"]) == k and r["method"] == method]


def plot(recs, ks, methods, path) -> None:
    """Mean IoU, head IoU and body IoU against k, one line per method (mean ± std over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.4), sharey=True)
    x = np.arange(len(ks))
    for ax, key, title in zip(axes, ("miou", "iou_head", "iou_body"), ("mean of head and body", "head", "body")):
        for j, m in enumerate(methods):
            vals = [[r[key] for r in runs_of(recs, k, m)] for k in ks]
            xs = [x[i] + 0.04 * (j - len(methods) / 2) for i, v in enumerate(vals) if v]
            ax.errorbar(xs, [np.mean(v) for v in vals if v], yerr=[np.std(v) for v in vals if v], marker="o",
                        capsize=3, label=NAMES[m])
        ax.set_xticks(x, ks)
        ax.set_xlabel("k fully annotated training volumes")
        ax.set_title(f"test IoU, {title}", fontsize=10)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(files, out_md, out_png=None):
    recs = [json.loads(ln) for f in files for ln in open(f) if ln.strip()]
    ks = sorted({str(r["k"]) for r in recs}, key=lambda s: (s == "all", int(s) if s.isdigit() else 0))
    methods = [m for m in METHODS if any(r["method"] == m for r in recs)]
    if out_png:
        plot(recs, ks, methods, out_png)

    def cell(k, m, key):
        v = [r[key] for r in runs_of(recs, k, m)]
        return f"{np.mean(v):.3f} ({np.std(v):.3f}) [{len(v)}]" if v else "–"

    lines = [f"Runs: {len(recs)} from {', '.join(Path(f).name for f in files)}; mean (std) [runs] over seeds", "",
             "Mean IoU of head and body:", "",
             "| k mask volumes | " + " | ".join(NAMES[m] for m in methods) + " |",
             "|---|" + "---|" * len(methods)]
    for k in ks:
        lines.append(f"| {k} | " + " | ".join(cell(k, m, "miou") for m in methods) + " |")
    lines += ["", "IoU of head / body (means):", "",
              "| k mask volumes | " + " | ".join(NAMES[m] for m in methods) + " |",
              "|---|" + "---|" * len(methods)]
    for k in ks:
        row = []
        for m in methods:
            rs = runs_of(recs, k, m)
            row.append(f"{np.mean([r['iou_head'] for r in rs]):.3f} / {np.mean([r['iou_body'] for r in rs]):.3f}"
                       if rs else "–")
        lines.append(f"| {k} | " + " | ".join(row) + " |")
    others = [m for m in methods if m != "baseline"]
    if "baseline" in methods and others:
        # a seed fixes the split, the mask volumes and the initialisation: compare methods within a seed
        lines += ["", "Mean IoU minus the baseline's of the same seed: mean (std) [seeds above / seeds]:", "",
                  "| k mask volumes | " + " | ".join(NAMES[m] for m in others) + " |",
                  "|---|" + "---|" * len(others)]
        for k in ks:
            base = {r["seed"]: r["miou"] for r in runs_of(recs, k, "baseline")}
            row = []
            for m in others:
                d = [r["miou"] - base[r["seed"]] for r in runs_of(recs, k, m) if r["seed"] in base]
                row.append(f"{np.mean(d):+.3f} ({np.std(d):.3f}) [{sum(x > 0 for x in d)}/{len(d)}]" if d else "–")
            lines.append(f"| {k} | " + " | ".join(row) + " |")
    return emit(lines, out_md)


def main():
    ap = bench_args(__doc__, device_arg=False)
    ap.set_defaults(dataset_dir=str(DEFAULT_DATA))
    ap.add_argument("--ks", nargs="+", default=["3", "6", "12", "24", "all"])
    ap.add_argument("--methods", nargs="+", default=PAPER_METHODS, choices=list(METHODS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--box_fraction", type=float, default=0.5)
    ap.add_argument("--iterations_per_epoch", type=int, default=48,
                    help="the same number of iterations for every method (the masks-only baseline has fewer slices)")
    ap.add_argument("--channels", type=int, nargs="+", default=None,
                    help="U-Net channels per level (default: those of train_mlds.json, 32 64 128 256)")
    ap.add_argument("--out_jsonl", default=None)
    ap.add_argument("--report", nargs="+", default=None)
    ap.add_argument("--out_png", default=None, help="with --report: also plot IoU against k to this PNG")
    args = ap.parse_args()
    if args.report:
        report(args.report, args.out_md, args.out_png)
        return
    print(machine_line(torch.device("cuda" if torch.cuda.is_available() else "cpu")), flush=True)
    for seed in args.seeds:
        for k in args.ks:
            for m in args.methods:
                with tempfile.TemporaryDirectory() as tmp:
                    rec = run_one(args, k, m, seed, Path(tmp))
                print(json.dumps(rec), flush=True)
                if args.out_jsonl:
                    with open(args.out_jsonl, "a") as fh:
                        fh.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
