"""
Fig. 7 of Baručić & Kybic (2022) on MSD hippocampus slices, with the bundle's own workflows:

  for each m and seed: pre-train with BCE on m annotated slices (bundle: train.json + pretrain.json),
  then fine-tune on all training slices with sizes only (train.json + train_size.json, early stopping on the
  validation size error E), and score both checkpoints on the held-out test volumes (mean slice IoU, E).

Also the n study (Fig. 5/6): fine-tuning epochs with n = 1, 2, 4, 8 samples per image: epoch time, E and IoU.

    python benchmarks/size_protocol.py --ms 64 256 1024 all --seeds 0 --pretrain_iters 400

``--size_method matched`` fine-tunes with size-matched masks instead of the paper's estimator (bundle override
``train_size_matched.json``, :py:class:`weakseg.losses.SizeMatchedMaskLoss`), from the same pre-trained checkpoints.

Writes a markdown table (--out_md), a PNG plot (--out_png) and logs the plot to MLflow (experiment
weakseg_hippocampus, run "size_protocol_summary").
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
    simulated_annotations,
    CONFIGS, REPO, bench_args, emit, load_bundle_parser, machine_line, slice_scores, split_logits, trained_network,
)


# network_def overrides of the bundle's train.json
NETWORKS = {
    "unet": {},
    "basicunet": {"network_def": {"_target_": "BasicUNet", "spatial_dims": 2, "in_channels": 1, "out_channels": 1,
                                  "features": [32, 32, 64, 128, 256, 32]}},
}


def run_bundle(configs: list[str], **overrides) -> None:
    from monai.bundle import run

    run(
        "training",
        config_file=[str(CONFIGS / c) for c in configs],
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=str(CONFIGS / "logging.conf"),
        **overrides,
    )


def score(configs: list[str], ckpt: Path, **overrides) -> dict:
    parser = load_bundle_parser(*configs, **overrides)
    logits, labels = split_logits(trained_network(parser, ckpt), parser, "test")
    preds = logits > 0
    return dict(slice_scores(preds, labels), **breakdown(preds, labels), **sampled_sizes(logits, labels),
                n_test_slices=len(labels))


def sampled_sizes(logits: torch.Tensor, labels: torch.Tensor, samples: int = 16, seed: int = 0) -> dict:
    """
    What the size loss sees on logits (N, 1, H, W): test means of the target size s, of the predicted size g(ŷ),
    ŷ = [a > 0], and of E_Y[g(Y)] over ``samples`` draws of the stochastic binarisation with τ = 1 (eqs. 8–11),
    and the median logit of the predicted background and foreground pixels.
    """
    from weakseg.transforms import object_size

    gen = torch.Generator().manual_seed(seed)
    a = logits[:, 0].float()
    p = torch.sigmoid(a)
    g_y = torch.stack([object_size(torch.rand(p.shape, generator=gen) < p).double() for _ in range(samples)]).mean(0)
    fg = a > 0
    return dict(
        size_target=float(object_size(labels[:, 0] > 0).double().mean()),
        size_pred=float(object_size(fg).double().mean()),
        size_sampled=float(g_y.mean()),
        logit_bg=float(a[~fg].median()) if (~fg).any() else float("nan"),
        logit_fg=float(a[fg].median()) if fg.any() else float("nan"),
    )


def breakdown(preds: torch.Tensor, labels: torch.Tensor) -> dict:
    """
    Where the overlap of binary predictions and labels (N, 1, H, W) goes: per-slice means of TP / FP / FN pixels,
    of foreground pixels not within 2 pixels of the ground truth ("far FP"), of connected components (8-connected)
    in prediction and ground truth, and the fractions of slices whose predicted size g(ŷ) is above / below the
    target.
    """
    from scipy import ndimage

    from weakseg.transforms import object_size

    pred, gt = preds[:, 0], labels[:, 0] > 0
    g_pred, g_true = object_size(pred), object_size(gt)
    eight = np.ones((3, 3), bool)
    far, comps, comps_gt = [], [], []
    for p, g in zip(pred.numpy(), gt.numpy()):
        far.append(int((p & ~ndimage.binary_dilation(g, iterations=2)).sum()))
        comps.append(ndimage.label(p, eight)[1])
        comps_gt.append(ndimage.label(g, eight)[1])

    def mean(x):
        return float(x.double().mean()) if torch.is_tensor(x) else float(np.mean(x))

    return dict(
        tp=mean((pred & gt).flatten(1).sum(1)),
        fp=mean((pred & ~gt).flatten(1).sum(1)),
        fn=mean((~pred & gt).flatten(1).sum(1)),
        far_fp=mean(far),
        components=mean(comps),
        components_gt=mean(comps_gt),
        size_above=mean(g_pred > g_true),
        size_below=mean(g_pred < g_true),
    )


def epochs_log(db: Path, run_name_prefix: str) -> list[dict]:
    """Per-epoch validation E / IoU of the newest MLflow run whose name starts with the prefix."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.get_experiment_by_name("weakseg_hippocampus")
    runs = [r for r in client.search_runs([exp.experiment_id]) if r.info.run_name.startswith(run_name_prefix)]
    run = max(runs, key=lambda r: r.info.start_time)
    e = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "val_size_error")}
    iou = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "val_mean_iou")}
    return [{"epoch": k, "E": e[k], "IoU": iou.get(k)} for k in sorted(e)]


def main() -> None:
    ap = bench_args(__doc__, device_arg=False)
    ap.add_argument("--ms", nargs="+", default=["64", "256", "1024", "all"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--pretrain_iters", type=int, default=400)
    ap.add_argument("--size_epochs", type=int, default=8)
    ap.add_argument("--size_lr", type=float, default=1e-4)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--size_epoch_length", type=int, default=None,
                    help="fine-tuning iterations between validations (default: one pass over the training slices)")
    ap.add_argument("--noise_scale", type=float, default=1.0, help="logistic noise scale τ of the size loss (paper: 1)")
    ap.add_argument("--supervised_weight", type=float, default=0.0,
                    help="weight of BCE on the m annotated slices during size fine-tuning (paper: 0, sizes only)")
    ap.add_argument("--network", default="unet", choices=sorted(NETWORKS),
                    help="unet: the bundle's MONAI UNet (its last layers instance-normalise the one output channel); "
                         "basicunet: MONAI BasicUNet, whose logits come from a plain 1x1 convolution")
    ap.add_argument("--size_method", default="sampled", choices=["sampled", "matched"],
                    help="sampled: the paper's sampled-gradient size loss (train_size.json); matched: BCE to the "
                         "size-matched superlevel set of a per-epoch snapshot (train_size_matched.json)")
    ap.add_argument("--only_changed", type=int, choices=[0, 1], default=1,
                    help="with --size_method matched: 1 (the bundle's default): no loss on slices whose prediction "
                         "already has the matched size (SizeMatchedMaskLoss(only_changed=True)); 0: BCE on every slice")
    ap.add_argument("--n_study", nargs="*", type=int, default=[1, 2, 4, 8])
    ap.add_argument("--n_study_epochs", type=int, default=3)
    ap.add_argument("--output", default=str(REPO / "benchmarks" / "output" / "size"))
    ap.add_argument("--out_png", default=str(REPO / "benchmarks" / "size_fig7.png"))
    ap.add_argument("--out_json", default=None)
    ap.add_argument("--reuse", action="store_true", help="skip a stage whose checkpoint already exists in --output")
    ap.add_argument("--extra_results", default=None, help="JSON lines of rows from an earlier run to include")
    ap.add_argument("--report_only", nargs="+", default=None,
                    help="no training: table and plot from these result files (--out_json files or JSON lines of rows)")
    ap.add_argument("--compare", nargs="+", default=None,
                    help="with --report_only: also plot the fine-tuned IoU of the other methods in these files")
    args = ap.parse_args()
    if args.report_only:
        # one row per (m, seed, τ, λ, network, method): a later file replaces an earlier row of the same run
        this = (args.noise_scale, args.supervised_weight, args.network, method_key(vars(args)))
        rows = {(r["m"], r["seed"]) + run_key(r): r for f in args.report_only for r in load_rows(f)}
        results = [r for k, r in rows.items() if k[2:] == this]
        emit(report(results, [], args, 0.0, from_files=args.report_only), args.out_md)
        # the fine-tuned IoU of the other methods in --compare, each with the paper's τ and λ
        others: dict = {}
        for f in args.compare or []:
            for r in load_rows(f):
                key = run_key(r)
                if key[:3] == (1.0, 0.0, args.network) and key[3] != this[3]:
                    others.setdefault(key[3], {})[(r["m"], r["seed"])] = r  # later files win
        plot(results, [], args.out_png, label=METHOD_LABELS[this[3]],
             compare=[(METHOD_LABELS[k], list(v.values())) for k, v in sorted(others.items())])
        return

    base = dict(bundle_root=args.output, dataset_dir=args.dataset_dir, download=False, synthetic_fallback=False,
                **NETWORKS[args.network])
    out_dir = Path(args.output) / "output"
    results = []
    if args.extra_results:
        results = [json.loads(line) for line in Path(args.extra_results).read_text().splitlines() if line.strip()]
    size_overrides = {"train#trainer#epoch_length": args.size_epoch_length} if args.size_epoch_length else {}
    t_start = time.time()
    for seed in args.seeds:
        for m_arg in args.ms:
            m = "all" if m_arg == "all" else int(m_arg)
            # simulate -> train from the file: sizes on every training slice, masks on m of them
            weak = simulated_annotations(args.dataset_dir, Path(args.output) / "annotations" / f"m{m_arg}_s{seed}.json",
                                         seed, kinds=("size",), num_masks=m, mask_unit="slice")
            sel = dict(base, annotation_file=weak, seed=seed)
            # pre-training: a fixed budget of iterations, validated every epoch of max(m, 1024) samples
            parser = load_bundle_parser("train.json", "pretrain.json", **sel)
            n_train = len(parser.get_parsed_content("train#slices"))
            epoch_len = max(math.ceil(n_train / 64), math.ceil(1024 / 64))
            epochs = max(1, round(args.pretrain_iters / epoch_len))
            pre_ckpt = out_dir / f"pretrain_m{m_arg}_s{seed}" / "models" / "model.pt"
            t0 = time.time()
            if not (args.reuse and pre_ckpt.exists()):
                run_bundle(["train.json", "pretrain.json"], max_epochs=epochs, **sel)
            t_pre = time.time() - t0
            pre = score(["train.json", "pretrain.json"], pre_ckpt, **sel)
            # run directory named as the size config's "method"
            if args.size_method == "matched":
                size_configs = ["train.json", "train_size.json", "train_size_matched.json"]
                every = "" if args.only_changed else "_all_slices"
                size_ckpt = out_dir / f"size_matched_m{m_arg}_s{seed}{every}" / "models" / "model.pt"
                size_overrides["only_changed"] = bool(args.only_changed)
            else:
                size_configs = ["train.json", "train_size.json"]
                suffix = "" if args.noise_scale == 1 else f"_t{args.noise_scale:g}"
                suffix += f"_sw{args.supervised_weight:g}" if args.supervised_weight > 0 else ""
                size_ckpt = out_dir / f"size_m{m_arg}_s{seed}_n1{suffix}" / "models" / "model.pt"
            t0 = time.time()
            if not (args.reuse and size_ckpt.exists()):
                run_bundle(size_configs, max_epochs=args.size_epochs, learning_rate=args.size_lr,
                           early_stop_patience=args.patience, num_samples=1, noise_scale=args.noise_scale,
                           supervised_weight=args.supervised_weight, **sel, **size_overrides)
            t_size = time.time() - t0
            post = score(size_configs, size_ckpt, **sel)
            row = dict(m=m_arg, seed=seed, n_annotated=n_train, pre=pre, size=post, t_pre=t_pre, t_size=t_size,
                       noise_scale=args.noise_scale, supervised_weight=args.supervised_weight, size_lr=args.size_lr,
                       network=args.network, size_epoch_length=args.size_epoch_length, size_method=args.size_method,
                       only_changed=bool(args.only_changed) and args.size_method == "matched")
            print(json.dumps(row), flush=True)
            results.append(row)

    # n study on the smallest m, seed of the first run
    n_rows = []
    if args.n_study:
        m_arg = args.ms[0]
        m = "all" if m_arg == "all" else int(m_arg)
        weak = simulated_annotations(args.dataset_dir, Path(args.output) / "annotations" /
                                     f"m{m_arg}_s{args.seeds[0]}.json", args.seeds[0], kinds=("size",), num_masks=m,
                                     mask_unit="slice")
        sel = dict(base, annotation_file=weak, seed=args.seeds[0])
        for n in args.n_study:
            t0 = time.time()
            run_bundle(["train.json", "train_size.json"], max_epochs=args.n_study_epochs, learning_rate=args.size_lr,
                       early_stop_patience=args.n_study_epochs + 1, num_samples=n, noise_scale=args.noise_scale,
                       supervised_weight=args.supervised_weight, **sel)
            dt = (time.time() - t0) / args.n_study_epochs
            curve = epochs_log(out_dir / "mlruns.db", f"size_m{m_arg}_s{args.seeds[0]}_n{n}")
            n_rows.append(dict(n=n, sec_per_epoch=dt, curve=curve))
            print(json.dumps(n_rows[-1]), flush=True)

    if args.out_json:
        Path(args.out_json).write_text(json.dumps(dict(results=results, n_study=n_rows), indent=1))
    emit(report(results, n_rows, args, time.time() - t_start), args.out_md)
    plot(results, n_rows, args.out_png, label=METHOD_LABELS[method_key(vars(args))])
    log_summary(out_dir, args.out_png, args.out_md)


def load_rows(path: str) -> list[dict]:
    """Rows of an ``--out_json`` file (``{"results": [...]}``) or of a JSON-lines file (one row per line)."""
    text = Path(path).read_text()
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:  # JSON lines
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return whole["results"] if isinstance(whole, dict) and "results" in whole else [whole]


def m_order(results) -> list[str]:
    return sorted(dict.fromkeys(r["m"] for r in results), key=lambda m: float("inf") if m == "all" else int(m))


def test_slices(results) -> str:
    """The held-out slice counts of the rows' seeds (each seed draws its own volume split)."""
    counts = {r["seed"]: r["pre"]["n_test_slices"] for r in results if "n_test_slices" in r.get("pre", {})}
    return ", ".join(f"{n} (seed {s})" for s, n in sorted(counts.items())) or "not recorded"


def report(results, n_rows, args, total_s, from_files=None) -> list[str]:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if from_files:
        lines = [f"Rows from {', '.join(Path(f).name for f in from_files)}; "
                 f"seeds {sorted({r['seed'] for r in results})}; mean ± std over the seeds of each m."]
    else:
        lines = [
            f"Pre-training: {args.pretrain_iters} iterations of batch 64 (BCE, flips) on m annotated slices; size "
            + ("fine-tuning with size-matched masks of a per-epoch snapshot (BCE, flips"
               + ("; no loss on slices whose prediction already has the matched size)" if args.only_changed else ")")
               if args.size_method == "matched" else "fine-tuning: n = 1, no augmentation")
            + f": Adam {args.size_lr}, at most {args.size_epochs} epochs"
            + (f" of {args.size_epoch_length} iterations" if args.size_epoch_length else "")
            + f", early stop on validation E (patience {args.patience}). Test slices per seed: "
            f"{test_slices(results)}. Seeds {args.seeds}; total {total_s / 60:.0f} min.",
            f"Machine: {machine_line(device)}",
        ]
    lines += [
        "",
        "| m | test IoU pre-trained | test IoU after size fine-tuning | Δ IoU | test E pre-trained | test E after | issue reference (pre-trained) |",
        "|---|---|---|---|---|---|---|",
    ]
    ref = {"64": 0.59, "128": 0.65, "256": 0.69, "1024": 0.73, "all": 0.75}
    for m in m_order(results):
        rows = [r for r in results if r["m"] == m]
        a = np.array([r["pre"]["mean_slice_iou"] for r in rows])
        b = np.array([r["size"]["mean_slice_iou"] for r in rows])
        ea = np.array([r["pre"]["size_error"] for r in rows])
        eb = np.array([r["size"]["size_error"] for r in rows])

        def f(x):
            return f"{x.mean():.3f}" + (f" ± {x.std():.3f}" if len(x) > 1 else "")

        lines.append(
            f"| {m} ({rows[0]['n_annotated']}) | {f(a)} | {f(b)} | {(b - a).mean():+.3f} | {f(ea)} | {f(eb)} | "
            f"{ref.get(m, '')} |"
        )
    rows = [r for r in results if "tp" in r["pre"]]
    if rows:
        lines += [
            "",
            "Where the overlap goes (test means per slice, pre-trained → after size fine-tuning; far FP: predicted "
            "pixels more than 2 px from the ground truth; components: 8-connected, ground truth in brackets):",
            "",
            "| m | seed | τ | λ | TP px | FP px | far FP px | FN px | components | g(ŷ) > s / g(ŷ) < s |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            a, b = r["pre"], r["size"]
            lines.append(
                f"| {r['m']} | {r['seed']} | {r.get('noise_scale', 1.0):g} | {r.get('supervised_weight', 0.0):g} | {a['tp']:.0f} → {b['tp']:.0f} | "
                f"{a['fp']:.0f} → {b['fp']:.0f} | {a['far_fp']:.0f} → {b['far_fp']:.0f} | {a['fn']:.0f} → {b['fn']:.0f} | "
                f"{a['components']:.1f} → {b['components']:.1f} ({a['components_gt']:.1f}) | "
                f"{a['size_above']:.2f} / {a['size_below']:.2f} → {b['size_above']:.2f} / {b['size_below']:.2f} |"
            )
    rows = [r for r in results if "size_sampled" in r["pre"]]
    if rows:
        lines += [
            "",
            "What the size loss sees (test means, pre-trained → after size fine-tuning): target size s, predicted size "
            "g(ŷ), the mean size E_Y[g(Y)] of 16 stochastic binarisations (τ = 1), median logit of predicted "
            "background / foreground pixels:",
            "",
            "| network | m | seed | s | g(ŷ) | E_Y[g(Y)] | median logit background / foreground |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            a, b = r["pre"], r["size"]
            lines.append(
                f"| {r.get('network', 'unet')} | {r['m']} | {r['seed']} | {a['size_target']:.2f} | "
                f"{a['size_pred']:.2f} → {b['size_pred']:.2f} | {a['size_sampled']:.2f} → {b['size_sampled']:.2f} | "
                f"{a['logit_bg']:.2f} / {a['logit_fg']:.2f} → {b['logit_bg']:.2f} / {b['logit_fg']:.2f} |"
            )
    if n_rows:
        lines += [
            "",
            f"n study (m = {args.ms[0]}, {args.n_study_epochs} fine-tuning epochs each):",
            "",
            "| n | s / epoch | validation E per epoch | validation IoU per epoch |",
            "|---|---|---|---|",
        ]
        for r in n_rows:
            lines.append(
                f"| {r['n']} | {r['sec_per_epoch']:.1f} | "
                + ", ".join(f"{c['E']:.2f}" for c in r["curve"])
                + " | "
                + ", ".join(f"{c['IoU']:.3f}" for c in r["curve"])
                + " |"
            )
    return lines


METHOD_LABELS = {
    ("sampled", False): "+ size fine-tuning (paper: sampled gradient)",
    ("matched", False): "+ size fine-tuning (size-matched masks, every slice)",
    ("matched", True): "+ size fine-tuning (size-matched masks, changed slices only)",
}


def method_key(r: dict) -> tuple:
    """(size_method, only_changed) of a result row or of the parsed arguments; only_changed is False for the
    paper's estimator and for rows written before the option existed."""
    method = r.get("size_method", "sampled")
    return method, method == "matched" and bool(r.get("only_changed", False))


def run_key(r: dict) -> tuple:
    """(τ, λ, network, method) of a result row; rows of files older than an option get its default."""
    return r.get("noise_scale", 1.0), r.get("supervised_weight", 0.0), r.get("network", "unet"), method_key(r)


def plot(results, n_rows, path, label: str = "+ size fine-tuning", compare: list | None = None) -> None:
    """IoU per m of the pre-trained and fine-tuned rows (mean ± std over seeds); ``compare``, a list of
    (label, rows), adds the fine-tuned IoU of other rows at the same m."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2 if n_rows else 1, figsize=(10 if n_rows else 5, 3.6), squeeze=False)
    ax = axes[0, 0]
    ms = m_order(results)
    x = np.arange(len(ms))
    curves = [(results, "pre", "pre-trained (BCE on m masks)", "o"), (results, "size", label, "s")]
    for (name, rows), marker in zip(compare or [], "^vDP"):
        curves.append((rows, "size", name, marker))
    for rows, key, name, marker in curves:
        at = [i for i, m in enumerate(ms) if any(r["m"] == m for r in rows)]
        mean = [np.mean([r[key]["mean_slice_iou"] for r in rows if r["m"] == ms[i]]) for i in at]
        std = [np.std([r[key]["mean_slice_iou"] for r in rows if r["m"] == ms[i]]) for i in at]
        ax.errorbar(x[at], mean, yerr=std, marker=marker, capsize=3, label=name)
    ax.set_xticks(x, [str(m) for m in ms])
    ax.set_xlabel("m (annotated slices)")
    ax.set_ylabel("test mean slice IoU")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    if n_rows:
        ax = axes[0, 1]
        for r in n_rows:
            ax.plot([c["epoch"] for c in r["curve"]], [c["E"] for c in r["curve"]], "o-", label=f"n={r['n']}")
        ax.set_xlabel("fine-tuning epoch")
        ax.set_ylabel("validation size error E")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def log_summary(out_dir: Path, png: str, md: str | None) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{out_dir / 'mlruns.db'}")
    exp = client.get_experiment_by_name("weakseg_hippocampus")
    run = client.create_run(exp.experiment_id, run_name="size_protocol_summary", tags={"method": "size_protocol"})
    client.log_artifact(run.info.run_id, png)
    if md:
        client.log_artifact(run.info.run_id, md)
    client.set_terminated(run.info.run_id, "FINISHED")


if __name__ == "__main__":
    main()
