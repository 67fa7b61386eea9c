"""EDPCNN on Sunnybrook (Table 1 analogue): U-Net vs U-Net + DP vs EDPCNN, speed of the DP and of training.

Leave-one-patient-out over the patients in ``--dataset_dir`` (each fold validates on one held-out patient
and trains on the others); per fold and seed, the training slices are a telescopic subset of size ``--sizes``
(10 ⊂ all). Every method trains the same MONAI UNet (16-256 channels, 2 residual units) for ``--iterations``
iterations of batch 10 with random 90° rotations/flips; nothing is selected on the held-out patient.

- U-Net: BCE, Adam ``--lr_unet``; evaluated on the component containing the LV centre (else the largest).
- U-Net + DP: the same trained U-Net, its probability map through star pattern + DP (no end-to-end training).
- EDPCNN: trained through the DP with synthetic gradients (``EDPCNNTrainer``), Adam ``--lr_edpcnn``.

The star pattern is centred on the ground-truth LV centroid at evaluation (as in the paper); the
``--jitter`` curve moves it by a fraction of the LV's equivalent radius. Dice, ASSD and HD (mm) per slice.

Speed (``--speed``): DP forward (B = 10, N = 50, M = 65, δ = 2) banded vs dense (δ = M − 1, the O(N·M³)
version), one training iteration of EDPCNN vs U-Net on the same batch, and inference of a batch.

    python benchmarks/edpcnn.py --dataset_dir ../shared/data/Sunnybrook_SCD_5patients --out_jsonl r.jsonl
    python benchmarks/edpcnn.py --report r.jsonl [r2.jsonl ...] --out_md table.md
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, bench_args, device_sync, emit, interleaved_medians, machine_line, timeit  # noqa: E402

from weakseg.data import load_sunnybrook_datalist, lv_slices, telescopic_subset  # noqa: E402
from weakseg.engines import EDPCNNTrainer, RandFlipBatch, jitter_centres  # noqa: E402
from weakseg.inferers import CentreComponentInferer, DPContourInferer  # noqa: E402
from weakseg.metrics import contour_scores  # noqa: E402
from weakseg.networks import DPApproximator, StarPattern, dp_contour  # noqa: E402

DEFAULT_SB = REPO.parent / "shared" / "data" / "Sunnybrook_SCD_5patients"


def make_unet():
    from monai.networks.nets import UNet

    return UNet(2, 1, 1, channels=(16, 32, 64, 128, 256), strides=(2, 2, 2, 2), num_res_units=2)


class _ShuffledBatches(torch.utils.data.Sampler):
    """``iterations * batch`` indices made of concatenated seeded permutations (every slice once per pass)."""

    def __init__(self, n: int, total: int, seed: int) -> None:
        self.n, self.total, self.seed = n, total, seed

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed)
        out = []
        while len(out) < self.total:
            out += torch.randperm(self.n, generator=g).tolist()
        return iter(out[: self.total])

    def __len__(self) -> int:
        return self.total


def _loader(data, iterations, batch, seed, device):
    from monai.data import DataLoader

    items = [{"image": d["image"], "label": d["label"]} for d in data]
    return DataLoader(items, batch_size=batch, sampler=_ShuffledBatches(len(items), iterations * batch, seed),
                      num_workers=0, pin_memory=device.type == "cuda")


class _IterTimer:
    def __init__(self, sync):
        self.sync, self.t = sync, []

    def attach(self, engine):
        from ignite.engine import Events

        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine):
        self.sync()
        self.t.append(time.perf_counter())

    def per_iteration(self, skip: int = 10) -> float:
        t = np.diff(self.t[skip:])
        return float(np.median(t)) if len(t) else float("nan")


def train(method, data, args, seed, device, sync, star):
    from monai.engines import SupervisedTrainer

    torch.manual_seed(seed)
    net = make_unet().to(device)
    loader = _loader(data, args.iterations, args.batch_size, seed, device)
    aug = RandFlipBatch(prob=0.5, spatial_axes=(0, 1), seed=seed, transpose=True)
    timer = _IterTimer(sync)
    if method == "unet":
        opt = torch.optim.Adam(net.parameters(), lr=args.lr_unet)
        tr = SupervisedTrainer(device=device, max_epochs=1, train_data_loader=loader, network=net, optimizer=opt,
                               loss_function=torch.nn.BCEWithLogitsLoss(), prepare_batch=aug, non_blocking=True,
                               decollate=False)
    else:
        opt = torch.optim.Adam(net.parameters(), lr=args.lr_edpcnn)
        approx = DPApproximator(base_channels=args.base_channels).to(device)
        opt_f = torch.optim.Adam(approx.parameters(), lr=args.lr_approx, capturable=device.type == "cuda")
        tr = EDPCNNTrainer(device=device, max_epochs=1, train_data_loader=loader, network=net, optimizer=opt,
                           approximator=approx, approximator_optimizer=opt_f, star_pattern=star, delta=args.delta,
                           sigma=args.sigma, num_samples=args.num_samples, seed=seed, prepare_batch=aug,
                           non_blocking=True, decollate=False)
    timer.attach(tr)
    t0 = time.perf_counter()
    tr.run()
    sync()
    return net, time.perf_counter() - t0, timer.per_iteration()


@torch.no_grad()
def evaluate(net, data, mode, star, args, device, jitter=0.0, seed=0):
    net.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    inf = (CentreComponentInferer() if mode == "unet" else
           DPContourInferer(star, args.delta, args.smoothing_window, activation="sigmoid" if mode == "unet+dp" else None))
    rows = {"dice": [], "assd": [], "hd": []}
    for i in range(0, len(data), 10):
        chunk = data[i : i + 10]
        x = torch.stack([d["image"] for d in chunk]).to(device)
        y = torch.stack([d["label"] for d in chunk]).to(device)
        c = torch.stack([d["centre"] for d in chunk]).to(device)
        if jitter > 0:
            c = jitter_centres(y, jitter, gen, c)
        pred = inf.from_map(net(x), c)
        sc = contour_scores(pred, y, torch.stack([d["spacing"] for d in chunk]))
        for k in rows:
            rows[k] += sc[k].tolist()
    return rows


def quality(args, device, sync):
    items = load_sunnybrook_datalist(args.dataset_dir)
    data = lv_slices(items, args.spatial_size)
    patients = sorted({d["patient"] for d in data})
    star = StarPattern(args.num_rays, args.num_points, args.radius)
    folds = args.folds if args.folds else list(range(len(patients)))
    out = open(args.out_jsonl, "a") if args.out_jsonl else None
    for fold in folds:
        val_p = patients[fold]
        train_all = [d for d in data if d["patient"] != val_p]
        val = [d for d in data if d["patient"] == val_p]
        for seed in args.seeds:
            for size in args.sizes:
                tr_data = telescopic_subset(train_all, None if size == "all" else int(size), seed=seed)
                for method in args.methods:
                    net, secs, per_it = train(method, tr_data, args, seed, device, sync, star)
                    modes = ["unet", "unet+dp"] if method == "unet" else ["edpcnn"]
                    for mode in modes:
                        for jit in ([0.0] + list(args.jitter)):
                            sc = evaluate(net, val, mode, star, args, device, jit, seed)
                            rec = {"fold": fold, "val_patient": val_p, "seed": seed, "size": size,
                                   "num_train": len(tr_data), "method": mode, "jitter": jit,
                                   "iterations": args.iterations, "train_s": secs,
                                   "lr": args.lr_unet if method == "unet" else args.lr_edpcnn, "s_per_iter": per_it,
                                   **({"num_samples": args.num_samples} if method == "edpcnn" else {}),
                                   "device": str(device), **{k: float(np.nanmean(v)) for k, v in sc.items()},
                                   "empty": int(np.isnan(sc["hd"]).sum()), "n_val": len(val)}
                            print(json.dumps(rec), flush=True)
                            if out:
                                out.write(json.dumps(rec) + "\n")
                                out.flush()


def speed(args, device, sync):
    lines = [f"Machine: {machine_line(device)}", "",
             "| quantity | value |", "|---|---|"]
    g = torch.randn(10, 50, 65, device=device)
    t_band = timeit(lambda: dp_contour(g, 2, method="all_starts"), 20, sync)
    t_dense = timeit(lambda: dp_contour(g, 64, method="all_starts"), 5, sync)
    lines += [f"| DP forward B=10, N=50, M=65, δ=2, banded, all starts, Gaussian maps (ms) | {t_band * 1e3:.2f} |",
              f"| DP forward, dense O(N·M³) (δ = M−1) (ms) | {t_dense * 1e3:.2f} |",
              f"| dense / banded | {t_dense / t_band:.1f}× |"]
    data = lv_slices(load_sunnybrook_datalist(args.dataset_dir), args.spatial_size)[:10]
    star = StarPattern(args.num_rays, args.num_points, args.radius)
    if device.type == "cpu":  # the pruned exact DP (the CPU default): its cost depends on the maps
        lv = torch.stack([d["label"] for d in data]).to(device)
        cen = torch.stack([d["centre"] for d in data]).to(device)
        g_lv = star.warp(torch.sigmoid(8 * (lv - 0.5)), cen)  # contour-like maps of the real LV masks
        g_noisy = (g_lv[None] + torch.randn((args.num_samples,) + tuple(g_lv.shape))).flatten(0, 1)
        for name, x in (("Gaussian maps", g), ("real LV masks", g_lv),
                        (f"real LV masks + N(0, 1), S·B = {g_noisy.shape[0]}", g_noisy)):
            t_all = timeit(lambda: dp_contour(x, 2, method="all_starts"), 5, sync)
            t_pr = timeit(lambda: dp_contour(x, 2, method="pruned"), 5, sync)
            lines += [f"| DP, {name}: all starts / pruned (ms) | {t_all * 1e3:.2f} / {t_pr * 1e3:.2f} "
                      f"({t_all / t_pr:.1f}×) |"]
    # one training iteration on a fixed batch of real slices; the trained networks are then timed at inference,
    # because the pruned DP's cost depends on the maps (a trained network's are contour-like, a fresh one's noise)
    args2 = argparse_copy(args, iterations=args.speed_iterations)
    net_unet, _, it_unet = train("unet", data, args2, 0, device, sync, star)
    s_values = args.speed_num_samples or [args.num_samples]
    runs = {s_num: train("edpcnn", data, argparse_copy(args2, num_samples=s_num), 0, device, sync, star)
            for s_num in s_values}
    it_dp = {s_num: run[2] for s_num, run in runs.items()}
    net_dp = runs[s_values[0]][0]  # the first S's network is timed at inference
    _, _, it_unet2 = train("unet", data, args2, 0, device, sync, star)  # again: the machine's speed may drift
    lines += [f"| training iteration, U-Net BCE, before / after EDPCNN (ms) | {it_unet * 1e3:.1f} / "
              f"{it_unet2 * 1e3:.1f} |"]
    it_unet = 0.5 * (it_unet + it_unet2)
    for s_num, t in it_dp.items():
        lines += [f"| training iteration, EDPCNN, S = {s_num} (ms) | {t * 1e3:.1f} |",
                  f"| EDPCNN (S = {s_num}) / mean U-Net iteration | {t / it_unet:.2f}× |"]
    # the floor set by the approximator alone: one of its steps (forward, backward, Adam) on B maps, as the trainer
    # takes it (channels-last weights on the CPU, a CUDA graph on CUDA)
    approx = DPApproximator(base_channels=args.base_channels).to(device)
    opt_f = torch.optim.Adam(approx.parameters(), lr=args.lr_approx, capturable=device.type == "cuda")
    unet = make_unet().to(device)
    tr_f = EDPCNNTrainer(device=device, max_epochs=1, train_data_loader=[None], network=unet,
                         optimizer=torch.optim.Adam(unet.parameters()), approximator=approx,
                         approximator_optimizer=opt_f, star_pattern=star, num_samples=1)
    g_b = torch.randn(1, len(data), args.num_rays, args.num_points, device=device)
    t_b = torch.randint(0, args.num_points, (1, len(data), args.num_rays), device=device)
    t_f = timeit(lambda: tr_f.train_approximator(g_b, t_b), 20, sync)
    lines += [f"| one approximator step (B = {len(data)} maps; forward, backward, Adam) (ms) | {t_f * 1e3:.1f} |"]
    lines += [f"| S = {s_num} approximator steps / mean U-Net iteration | {s_num * t_f / it_unet:.2f}× |"
              for s_num in s_values]
    # the same floor in arithmetic: a device that runs both networks at the same FLOP rate cannot train EDPCNN
    # faster than 1 + S · (approximator step FLOPs) / (U-Net iteration FLOPs)
    x = torch.stack([d["image"] for d in data]).to(device)
    y = torch.stack([d["label"] for d in data]).to(device)
    c = torch.stack([d["centre"] for d in data]).to(device)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    flop_u = _flops(lambda: bce(tr_f.network(x), y).backward())  # forward and backward; Adam's are negligible
    flop_f = _flops(lambda: tr_f._approx_step(g_b[0], t_b[0]))
    lines += [f"| GFLOP: U-Net training iteration / one approximator step | {flop_u / 1e9:.2f} / {flop_f / 1e9:.3f} |"]
    lines += [f"| FLOP floor of EDPCNN (S = {s_num}) / U-Net iteration, 1 + S·F/U | {1 + s_num * flop_f / flop_u:.2f}× |"
              for s_num in s_values]
    dp = DPContourInferer(star, args.delta, args.smoothing_window)
    cc = CentreComponentInferer()
    for name, unet, edp in ((f"networks trained {args.speed_iterations} iterations on the batch", net_unet, net_dp),
                            ("untrained network", make_unet().to(device), make_unet().to(device))):
        unet.eval()
        edp.eval()
        # "same": the EDPCNN network thresholded, so that the head's own cost is seen apart from the two networks'
        # speeds (trained weights differ, e.g. in how many denormal activations they produce)
        with torch.no_grad():
            out = edp(x)
            fns = {"thr": lambda: unet(x) > 0, "cc": lambda: cc.from_map(unet(x), c),
                   "dp": lambda: dp.from_map(edp(x), c), "same": lambda: edp(x) > 0, "head": lambda: dp.from_map(out, c)}
            t = interleaved_medians(fns, 60, sync)
        lines += [f"| inference B=10, {name}: U-Net + threshold / + centre component / EDPCNN (U-Net + warp + DP + "
                  f"fill) / EDPCNN's network + threshold (ms) | {t['thr'] * 1e3:.2f} / {t['cc'] * 1e3:.2f} / "
                  f"{t['dp'] * 1e3:.2f} / {t['same'] * 1e3:.2f} |",
                  f"| EDPCNN / U-Net + threshold, {name} | {t['dp'] / t['thr']:.2f}× |",
                  f"| EDPCNN / U-Net + centre component, {name} | {t['dp'] / t['cc']:.2f}× |",
                  f"| EDPCNN / its own network + threshold, {name} | {t['dp'] / t['same']:.2f}× |",
                  f"| the head alone (warp + DP + smoothing + fill of a computed map) (ms), {name} | "
                  f"{t['head'] * 1e3:.2f} |"]
    return lines


def _flops(fn) -> int:
    """FLOPs of ``fn()``, counted by ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def argparse_copy(args, **kw):
    import copy

    a = copy.copy(args)
    for k, v in kw.items():
        setattr(a, k, v)
    return a


def _name(r) -> str:
    base = {"unet": "U-Net", "unet+dp": "U-Net + DP", "edpcnn": "EDPCNN"}[r["method"]]
    if r["method"] == "edpcnn" and r.get("num_samples", 10) != 10:  # records without the key used S = 10
        base += f", S = {r['num_samples']}"
    return f"{base}, Adam {r['lr']:g}" if "lr" in r else base


def report(files, out_md):
    recs = [json.loads(ln) for f in files for ln in open(f) if ln.strip()]
    lines = []
    devs = sorted({r["device"] for r in recs})
    lines.append(f"Runs: {len(recs)} evaluations from {', '.join(Path(f).name for f in files)}; device(s): "
                 f"{', '.join(devs)}")
    folds = sorted({(r["fold"], r["val_patient"]) for r in recs})
    lines += ["", "| training slices | method | Dice | ASSD (mm) | HD (mm) | runs (folds × seeds) | Dice per held-out "
              "patient (" + ", ".join(p for _, p in folds) + ") |", "|---|---|---|---|---|---|---|"]
    sizes = sorted({str(r["size"]) for r in recs}, key=lambda s: (s == "all", int(s) if s.isdigit() else 0))
    order = {"unet": 0, "unet+dp": 1, "edpcnn": 2}
    names = sorted({(order[r["method"]], _name(r)) for r in recs})
    for size in sizes:
        for _, name in names:
            rs = [r for r in recs if str(r["size"]) == size and _name(r) == name and r["jitter"] == 0]
            if not rs:
                continue
            cell = []
            for k in ("dice", "assd", "hd"):
                v = np.array([r[k] for r in rs])
                cell.append(f"{np.nanmean(v):.3f} ({np.nanstd(v):.3f})")
            per = []
            for f, _ in folds:
                v = [r["dice"] for r in rs if r["fold"] == f]
                per.append("/".join(f"{x:.2f}" for x in v) if v else "–")
            lines.append(f"| {size} | {name} | {' | '.join(cell)} | {len(rs)} | {', '.join(per)} |")
    jits = sorted({r["jitter"] for r in recs})
    if len(jits) > 1:
        lines += ["", "Centre-jitter robustness (mean Dice; jitter = fraction of the LV's equivalent radius, random "
                  "direction):", "", "| training slices | method | " + " | ".join(f"{j:g}" for j in jits) + " |",
                  "|---|---|" + "---|" * len(jits)]
        for size in sizes:
            for _, name in names:
                vals = []
                for j in jits:
                    rs = [r["dice"] for r in recs if str(r["size"]) == size and _name(r) == name and r["jitter"] == j]
                    vals.append(f"{np.mean(rs):.3f}" if rs else "–")
                if any(v != "–" for v in vals[1:]):
                    lines.append(f"| {size} | {name} | " + " | ".join(vals) + " |")
    return emit(lines, out_md)


def main():
    ap = bench_args(__doc__)
    ap.set_defaults(dataset_dir=str(DEFAULT_SB))
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--batch_size", type=int, default=10)
    ap.add_argument("--sizes", nargs="+", default=["10", "all"])
    ap.add_argument("--folds", type=int, nargs="*", default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--methods", nargs="+", default=["unet", "edpcnn"], choices=["unet", "edpcnn"])
    ap.add_argument("--jitter", type=float, nargs="*", default=[0.1, 0.2, 0.3, 0.4, 0.5])
    ap.add_argument("--spatial_size", type=int, nargs=2, default=[160, 160])
    ap.add_argument("--num_rays", type=int, default=50)
    ap.add_argument("--num_points", type=int, default=64)
    ap.add_argument("--radius", type=float, default=64.0)
    ap.add_argument("--delta", type=int, default=2)
    ap.add_argument("--sigma", type=float, default=1.0)
    ap.add_argument("--num_samples", type=int, default=10)
    ap.add_argument("--smoothing_window", type=int, default=5)
    ap.add_argument("--base_channels", type=int, default=8)
    ap.add_argument("--lr_unet", type=float, default=1e-4)
    ap.add_argument("--lr_edpcnn", type=float, default=1e-3,
                    help="EDPCNN's U-Net (1e-3: chosen on fold 0 against 1e-4, see RESULTS.md)")
    ap.add_argument("--lr_approx", type=float, default=1e-3)
    ap.add_argument("--speed", action="store_true", help="only the speed table")
    ap.add_argument("--speed_iterations", type=int, default=300,
                    help="training iterations timed per method; the trained networks are then timed at inference")
    ap.add_argument("--speed_num_samples", type=int, nargs="*", default=None,
                    help="S values whose EDPCNN iteration is timed (default: --num_samples)")
    ap.add_argument("--out_jsonl", default=None)
    ap.add_argument("--report", nargs="+", default=None, help="summarise these JSONL files and exit")
    args = ap.parse_args()
    if args.report:
        report(args.report, args.out_md)
        return
    device, sync = device_sync(args.device)
    if args.speed:
        emit(speed(args, device, sync), args.out_md)
        return
    quality(args, device, sync)


if __name__ == "__main__":
    main()
