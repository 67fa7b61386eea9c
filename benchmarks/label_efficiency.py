"""
Label efficiency of every method on MSD hippocampus slices: test mean slice IoU against the number m of annotated
masks, the other training slices carrying only weak labels.

For each budget m and seed, on one volume-level split (the seed's):

1. simulate: two annotation files written from the masks (``weakseg.annotations.simulate_weak_annotations``):
   masks on m slices, a size on every slice, and boxes (``*_boxes.json``) or image labels (``*_labels.json``) on
   every case. Training reads only these files.
2. ``masks_only``: the bundle's pre-training (``train.json`` + ``pretrain.json``) on the m masks, run until the
   validation Dice stops improving (``--early_stop_patience``, at most ``--max_iterations``); this is the
   converged baseline and the start of every size method.
3. fine-tuning from that checkpoint on all training slices with their sizes (``train_size.json``, early stop on the
   validation size error): ``size_sampled`` (the paper's sampled-gradient loss), ``size_matched`` (size-matched
   masks of an epoch snapshot), ``size_matched_ema`` (the same with an EMA teacher, α = 0.99 per iteration),
   ``soft_size`` (differentiable soft-erosion size, plain backprop), ``size_bounds`` (Kervadec et al.'s area
   penalty with bounds from the size), and these two with BCE on the m masks kept (``*_masks``, λ = 1: partial
   labels plus the size term, as Kervadec et al. train).
4. multi-label deep supervision from scratch (``train_mlds.json``): ``mlds_boxes`` (m masks + boxes),
   ``mlds_labels`` (m masks + image labels); scored on the merged foreground.

Each trained model's best-validation checkpoint is scored on the seed's test volumes (slices with ≥ 1 %
foreground): mean slice IoU, the figure of the size work. Every run logs to one MLflow experiment
(``weakseg_label_efficiency``) with the tags ``method``, ``budget`` and ``seed``; the report adds a summary run
with the table and the plot as artifacts.

    python benchmarks/label_efficiency.py --budgets 16 64 256 all --seeds 0 1 2 --channels 16 32 64 128 --out_jsonl rows.jsonl
    python benchmarks/label_efficiency.py --report rows.jsonl --out_md table.md --out_png label_efficiency.png --log_mlflow
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    CONFIGS, REPO, bench_args, emit, load_bundle_parser, machine_line, simulated_annotations, slice_scores,
    split_tensors, batched_logits,
)

EXPERIMENT = "weakseg_label_efficiency"
BASELINE = "masks_only"
# method -> (configs after train.json, extra overrides, annotation file kind)
SIZE = ["train.json", "train_size.json"]
METHODS = {
    BASELINE: (["train.json", "pretrain.json"], {}, "boxes"),
    "size_sampled": (SIZE, {}, "boxes"),
    "size_matched": (SIZE + ["train_size_matched.json"], {}, "boxes"),
    "size_matched_ema": (SIZE + ["train_size_matched.json"], {"teacher_alpha": 0.99, "teacher_event": "iteration"},
                         "boxes"),
    "soft_size": (SIZE + ["train_soft_size.json"], {}, "boxes"),
    "size_bounds": (SIZE + ["train_size_bounds.json"], {}, "boxes"),
    # the two baselines with BCE on the m masks kept (λ = 1), as Kervadec et al. train: partial labels + size penalty
    "soft_size_masks": (SIZE + ["train_soft_size.json"], {"supervised_weight": 1.0}, "boxes"),
    "size_bounds_masks": (SIZE + ["train_size_bounds.json"], {"supervised_weight": 1.0}, "boxes"),
    "mlds_boxes": (["train.json", "train_mlds.json"], {}, "boxes"),
    "mlds_labels": (["train.json", "train_mlds.json"], {}, "labels"),
}
LABELS = {
    BASELINE: "masks only (converged)",
    "size_sampled": "sizes: paper's sampled gradient",
    "size_matched": "sizes: size-matched masks",
    "size_matched_ema": "sizes: size-matched, EMA teacher",
    "soft_size": "sizes: soft-erosion size (backprop)",
    "size_bounds": "sizes: Kervadec area bounds",
    "soft_size_masks": "sizes + masks: soft-erosion size + BCE",
    "size_bounds_masks": "sizes + masks: Kervadec bounds + BCE",
    "mlds_boxes": "MLDS: masks + boxes",
    "mlds_labels": "MLDS: masks + image labels",
}
# the methods trained from scratch with early stopping on validation Dice (the others fine-tune the baseline)
FROM_SCRATCH = (BASELINE, "mlds_boxes", "mlds_labels")


def run_bundle(configs: list[str], **overrides) -> None:
    from monai.bundle import run

    run("training", config_file=[str(CONFIGS / c) for c in configs], meta_file=str(CONFIGS / "metadata.json"),
        logging_file=str(CONFIGS / "logging.conf"), **overrides)


@torch.no_grad()
def score(configs: list[str], oracle: bool = False, **overrides) -> dict:
    """Test scores of the run's best checkpoint (``<ckpt_dir>/model.pt``): binary foreground (the sigmoid output > 0, or the argmax of a multi-class
    output > 0) against the merged label, on the test slices as the bundle prepares them. ``oracle``: also the mean
    slice IoU after re-thresholding every test slice's logits to the size of its true mask (the size-matched mask
    with the true sizes), the most that choosing the right size can give this network's ranking of pixels."""
    from weakseg.kernels import object_size, size_matched_mask

    parser = load_bundle_parser(*configs, **overrides)
    ckpt = Path(parser.get_parsed_content("ckpt_dir")) / "model.pt"
    net = parser.get_parsed_content("network")
    net.load_state_dict(torch.load(ckpt, weights_only=True, map_location="cpu"))
    imgs, labels = split_tensors(parser, "test")
    logits = batched_logits(net, imgs)
    pred = logits > 0 if logits.shape[1] == 1 else logits.argmax(1, keepdim=True) > 0
    target = (labels > 0).to(torch.uint8)
    res = dict(slice_scores(pred, target), n_test_slices=len(labels))
    if oracle and logits.shape[1] == 1:
        matched = size_matched_mask(logits, object_size(target[:, 0] > 0).float()).reshape(logits.shape) > 0
        res["oracle_size_iou"] = slice_scores(matched, target)["mean_slice_iou"]
    return res


def selected_epoch(tracking_uri: str, method: str, budget: str, seed: int) -> dict:
    """Epochs run and the epoch whose checkpoint was kept (best validation key metric; 0: the starting weights,
    validated before fine-tuning), read back from the newest MLflow run with these tags."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([exp.experiment_id], f"tags.method = '{method}' and tags.budget = '{budget}' and "
                              f"tags.seed = '{seed}'", order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        return {}
    key, better = ("val_mean_dice", max) if method in FROM_SCRATCH else ("val_size_error", min)
    hist = {m.step: m.value for m in client.get_metric_history(runs[0].info.run_id, key)}
    if not hist:
        return {}
    return dict(epochs_run=max(hist), selected_epoch=better(hist, key=lambda k: (hist[k], -k if better is max else k)))


def epoch_iterations(configs: list[str], **overrides) -> int:
    """Iterations per epoch of the configs' trainer (resolves the training slices)."""
    return int(load_bundle_parser(*configs, **overrides).get_parsed_content("train#trainer#epoch_length"))


def unit_overrides(args, m_arg: str, seed: int, channels) -> tuple[Path, dict]:
    """The bundle root of one (budget, seed) and the overrides every run of it shares."""
    root = Path(args.output) / f"m{m_arg}_s{seed}"
    return root, dict(bundle_root=str(root), dataset_dir=args.dataset_dir, download=False, synthetic_fallback=False,
                      seed=seed, experiment_name=EXPERIMENT, tracking_uri=args.tracking_uri,
                      **{"network_def#channels": list(channels)})


def add_oracle(args, files, out_jsonl: str) -> None:
    """Masks-only rows of ``files`` without the oracle-size score get it from their checkpoint; the completed
    rows are appended to ``out_jsonl`` (a later row replaces an earlier one in the report)."""
    with open(out_jsonl, "a") as out:
        for r in load_rows(files):
            if r["method"] != BASELINE or "oracle_size_iou" in r["test"]:
                continue
            m_arg, seed = str(r["budget"]), r["seed"]
            root, base = unit_overrides(args, m_arg, seed, r["channels"])
            configs, extra, kind = METHODS[BASELINE]
            sel = dict(base, annotation_file=str(root / "annotations" / f"m{m_arg}_s{seed}_{kind}.json"), **extra)
            r["test"] = score(configs, oracle=True, **sel)
            print(json.dumps(r), flush=True)
            out.write(json.dumps(r) + "\n")


def run_unit(args, m_arg: str, seed: int, done: set, out) -> None:
    root, base = unit_overrides(args, m_arg, seed, args.channels)
    m = "all" if m_arg == "all" else int(m_arg)
    files = {}
    for kind, frac in (("boxes", 1.0), ("labels", 0.0)):
        files[kind] = simulated_annotations(args.dataset_dir, root / "annotations" / f"m{m_arg}_s{seed}_{kind}.json",
                                            seed, kinds=("size", "boxes", "classes"), num_masks=m, mask_unit="slice",
                                            box_fraction=frac)
    methods = [BASELINE] if m_arg == "all" else args.methods
    for method in methods:
        if (m_arg, seed, method) in done:
            continue
        configs, extra, kind = METHODS[method]
        sel = dict(base, annotation_file=files[kind], **extra, **{"run_tags#method": method, "run_tags#budget": m_arg,
                                                                 "run_tags#seed": seed})
        if method in FROM_SCRATCH:
            if method == BASELINE:
                sel["samples_per_epoch"] = args.scratch_epoch_length * 64
            else:
                sel["iterations_per_epoch"] = args.scratch_epoch_length
            per_epoch = epoch_iterations(configs, **sel)
            train = dict(max_epochs=max(1, math.ceil(args.max_iterations / per_epoch)),
                         early_stop_patience=args.early_stop_patience)
        else:
            train = dict(max_epochs=args.size_epochs, early_stop_patience=args.size_patience)
        t0 = time.time()
        run_bundle(configs, **sel, **train)
        minutes = (time.time() - t0) / 60
        row = dict(budget=m_arg, seed=seed, method=method, minutes=minutes, channels=list(args.channels),
                   **train, **selected_epoch(args.tracking_uri, method, m_arg, seed),
                   test=score(configs, oracle=method == BASELINE, **sel))
        print(json.dumps(row), flush=True)
        out.write(json.dumps(row) + "\n")
        out.flush()


def load_rows(files) -> list[dict]:
    """Rows of JSON-lines files; a later row of the same (budget, seed, method) replaces an earlier one."""
    rows = {}
    for f in files:
        for line in Path(f).read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                rows[(str(r["budget"]), r["seed"], r["method"])] = r
    return list(rows.values())


def budgets_of(rows) -> list[str]:
    return sorted({str(r["budget"]) for r in rows}, key=lambda b: (b == "all", int(b) if b.isdigit() else 0))


def table(rows, metric: str = "mean_slice_iou") -> list[str]:
    """Mean ± std over seeds of each method and budget, and the paired difference to masks only (same budget and
    seed): mean ± std of the per-seed differences, with the number of pairs."""
    budgets = budgets_of(rows)
    methods = [k for k in METHODS if any(r["method"] == k for r in rows)]
    val = {(str(r["budget"]), r["seed"], r["method"]): r["test"][metric] for r in rows}
    lines = ["| method | " + " | ".join(f"m = {b}" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    for method in methods:
        cells = []
        for b in budgets:
            v = np.array([x for (bb, s, mm), x in val.items() if bb == b and mm == method])
            if not len(v):
                cells.append("")
                continue
            cell = f"{v.mean():.3f}" + (f" ± {v.std():.3f}" if len(v) > 1 else "") + f" (n={len(v)})"
            kept = [r for r in rows if str(r["budget"]) == b and r["method"] == method and r.get("selected_epoch") == 0]
            if method not in FROM_SCRATCH and kept:
                cell += f" [start kept {len(kept)}/{len(v)}]"
            if method != BASELINE:
                d = np.array([x - val[(bb, s, BASELINE)] for (bb, s, mm), x in val.items()
                              if bb == b and mm == method and (bb, s, BASELINE) in val])
                if len(d):
                    cell += f"; Δ {d.mean():+.3f}" + (f" ± {d.std():.3f}" if len(d) > 1 else "")
            cells.append(cell)
        lines.append(f"| {LABELS[method]} | " + " | ".join(cells) + " |")
    return lines


def oracle_lines(rows) -> list[str]:
    """The masks-only networks re-thresholded to the true size of every test slice, per budget."""
    lines = []
    for b in budgets_of(rows):
        pairs = [(r["test"]["mean_slice_iou"], r["test"]["oracle_size_iou"]) for r in rows
                 if str(r["budget"]) == b and r["method"] == BASELINE and "oracle_size_iou" in r["test"]]
        if pairs:
            a, o = np.array(pairs).T
            lines.append(f"| {b} | {a.mean():.3f} | {o.mean():.3f} | {(o - a).mean():+.3f} | {len(pairs)} |")
    if not lines:
        return []
    return ["", "Oracle sizes: the masks-only network's test logits re-thresholded per slice to the size of the true "
            "mask (the size-matched mask with the true sizes), the most a size alone can add to this ranking of pixels:",
            "", "| m | masks only | re-thresholded to the true size | gain | runs |", "|---|---|---|---|---|", *lines]


def plot(rows, path, metric: str = "mean_slice_iou") -> None:
    """Test IoU against the number of masks, one line per method (mean ± std over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = budgets_of(rows)
    x = np.arange(len(budgets))
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    methods = [k for k in METHODS if any(r["method"] == k for r in rows)]
    for j, method in enumerate(methods):
        vals = [[r["test"][metric] for r in rows if r["method"] == method and str(r["budget"]) == b] for b in budgets]
        at = [i for i, v in enumerate(vals) if v]
        ax.errorbar(x[at] + 0.015 * (j - len(methods) / 2), [np.mean(vals[i]) for i in at],
                    yerr=[np.std(vals[i]) for i in at], marker="o", capsize=3, label=LABELS[method],
                    lw=2.5 if method == BASELINE else 1.2)
    ax.set_xticks(x, budgets)
    ax.set_xlabel("m (training slices with a mask; the others weakly labelled)")
    ax.set_ylabel("test mean slice IoU")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def log_summary(tracking_uri: str, files: list[str]) -> None:
    """A summary run in the study's MLflow experiment holding the table, the plot and the result files."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(EXPERIMENT) or client.get_experiment(client.create_experiment(EXPERIMENT))
    run = client.create_run(exp.experiment_id, run_name="label_efficiency_summary", tags={"method": "summary"})
    for f in files:
        client.log_artifact(run.info.run_id, f)
    client.set_terminated(run.info.run_id, "FINISHED")


def report(files, out_md=None, out_png=None, tracking_uri=None, log_mlflow: bool = False) -> str:
    rows = load_rows(files)
    if tracking_uri:  # rows written before the selected epoch was recorded
        for r in rows:
            if "selected_epoch" not in r:
                r.update(selected_epoch(tracking_uri, r["method"], str(r["budget"]), r["seed"]))
    seeds = sorted({r["seed"] for r in rows})
    lines = [
        f"Rows from {', '.join(Path(f).name for f in files)}; seeds {seeds}. Test mean slice IoU, mean ± std over the "
        "seeds (n runs); Δ: paired difference to masks only at the same budget and seed; [start kept k/n]: in k runs "
        "no fine-tuning epoch had a lower validation size error than the starting weights, so the selected checkpoint "
        "is the masks-only one.",
        "",
        *table(rows),
        *oracle_lines(rows),
    ]
    text = emit(lines, out_md)
    if out_png:
        plot(rows, out_png)
    if tracking_uri and log_mlflow:
        log_summary(tracking_uri, [f for f in (out_md, out_png) if f] + list(files))
    return text


def main() -> None:
    ap = bench_args(__doc__, device_arg=False)
    ap.add_argument("--budgets", nargs="+", default=["16", "64", "256", "all"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--channels", nargs="+", type=int, default=[32, 64, 128, 256],
                    help="UNet channels of every method (the bundle's default: 32 64 128 256)")
    ap.add_argument("--max_iterations", type=int, default=1200,
                    help="at most this many training iterations for the methods trained from scratch")
    ap.add_argument("--early_stop_patience", type=int, default=8,
                    help="validations without a better validation Dice before a from-scratch run stops")
    ap.add_argument("--scratch_epoch_length", type=int, default=32,
                    help="iterations (of batch 64) between validations of the runs trained from scratch")
    ap.add_argument("--size_epochs", type=int, default=5, help="at most this many size fine-tuning epochs")
    ap.add_argument("--size_patience", type=int, default=2, help="early stop on the validation size error")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--output", default=str(REPO / "benchmarks" / "output" / "label_efficiency"))
    ap.add_argument("--tracking_uri", default=None, help="default: sqlite:///<output>/mlruns.db")
    ap.add_argument("--out_jsonl", default=None, help="append one JSON row per trained model (runs already there "
                                                       "are skipped)")
    ap.add_argument("--out_png", default=None)
    ap.add_argument("--report", nargs="+", default=None, help="no training: table and plot from these row files")
    ap.add_argument("--log_mlflow", action="store_true", help="with --report: log the table, the plot and the row "
                    "files as a summary run of the study's MLflow experiment")
    ap.add_argument("--add_oracle", nargs="+", default=None, help="no training: add the oracle-size score to the "
                    "masks-only rows of these files (appended to --out_jsonl)")
    args = ap.parse_args()
    args.tracking_uri = args.tracking_uri or f"sqlite:///{Path(args.output).resolve() / 'mlruns.db'}"
    if args.report:
        report(args.report, args.out_md, args.out_png, args.tracking_uri, args.log_mlflow)
        return
    if args.add_oracle:
        add_oracle(args, args.add_oracle, args.out_jsonl or str(Path(args.output) / "rows.jsonl"))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    Path(args.output).mkdir(parents=True, exist_ok=True)
    out_jsonl = args.out_jsonl or str(Path(args.output) / "rows.jsonl")
    done = {(str(r["budget"]), r["seed"], r["method"]) for r in load_rows([out_jsonl])} \
        if Path(out_jsonl).exists() else set()
    print(f"# {machine_line(torch.device('cpu'))}", flush=True)
    with open(out_jsonl, "a") as out:
        for seed in args.seeds:
            for m_arg in args.budgets:
                run_unit(args, m_arg, seed, done, out)
    report([out_jsonl], args.out_md, args.out_png, args.tracking_uri, log_mlflow=True)


if __name__ == "__main__":
    main()
