"""What the recovery machinery costs per training epoch.

The bundle's training step (its loader, network, BCE, Adam, flips) runs as a MONAI ``SupervisedTrainer`` in two
arms, alternated: **plain**, with MONAI's stock ``MLFlowHandler`` logging the loss per iteration; **recovery**, with
what the bundle adds so that no work is lost: ``MLflowRunHandler`` (buffered logging that survives tracking
outages, SIGTERM handling, duplicate-logger detection) and ``ResumeHandler`` writing the resumable checkpoint
(network, optimizer, trainer, random generators) atomically after every epoch, inside the run folder's lock. Each
epoch is timed from its start to the end of its last handler; the table gives the median epoch of each arm and their
ratio (goal: <= 1.02).

    python benchmarks/recovery_overhead.py --dataset_dir ../shared/data/Task04_Hippocampus --epochs 4
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_args, device_sync, emit, load_bundle_parser, machine_line  # noqa: E402


def main() -> None:
    ap = bench_args(__doc__)
    ap.add_argument("--epochs", type=int, default=4, help="timed epochs per arm and round (the first is dropped)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--max_train_volumes", type=int, default=60)
    args = ap.parse_args()
    device, sync = device_sync(args.device)

    from ignite.engine import Events
    from monai.engines import SupervisedTrainer
    from monai.handlers import MLFlowHandler

    from weakseg.engines import MLflowRunHandler, ResumeHandler, lock_run_dir

    with tempfile.TemporaryDirectory() as tmp:
        parser = load_bundle_parser("train.json", dataset_dir=args.dataset_dir, download=False,
                                    device=f"$torch.device('{device}')", bundle_root=tmp,
                                    max_train_volumes=args.max_train_volumes)
        loader = parser.get_parsed_content("train#dataloader")
        prepare = parser.get_parsed_content("train#prepare_batch")
        net = parser.get_parsed_content("network")
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        uri = f"sqlite:///{tmp}/mlruns.db"
        times: dict[str, list[float]] = {"plain": [], "recovery": []}

        def run(arm: str, k: int) -> None:
            trainer = SupervisedTrainer(device=device, max_epochs=args.epochs, train_data_loader=loader, network=net,
                                        optimizer=opt, loss_function=torch.nn.BCEWithLogitsLoss(),
                                        prepare_batch=prepare)
            kw = dict(tracking_uri=uri, experiment_name="overhead", run_name=f"{arm}{k}", iteration_log=True,
                      epoch_log=False, tag_name="train_loss", close_on_complete=True,
                      output_transform=lambda x: x[0]["loss"])
            if arm == "plain":
                MLFlowHandler(**kw).attach(trainer)
            else:
                run_dir = Path(tmp) / f"run{k}"
                lock_run_dir(run_dir)
                MLflowRunHandler(system_metrics=False, **kw).attach(trainer)
                ResumeHandler(run_dir, {"model": net, "optimizer": opt}, random_sources=[prepare]).attach(trainer)
            t0 = {}
            trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: (sync(), t0.__setitem__("t", time.perf_counter())))

            def stop(e):
                sync()
                if e.state.epoch > 1:  # the first epoch warms caches up
                    times[arm].append(time.perf_counter() - t0["t"])

            trainer.add_event_handler(Events.EPOCH_COMPLETED, stop)  # registered last: after the checkpoint
            trainer.run()

        for k in range(args.rounds):
            for arm in ("plain", "recovery"):
                run(arm, k)

    med = {arm: statistics.median(v) for arm, v in times.items()}
    lines = [
        f"Machine: {machine_line(device)}; {len(loader.dataset)} training slices, batches of {loader.batch_size}, "
        f"{len(times['plain'])} timed epochs per arm",
        "",
        "| arm | median epoch |",
        "|---|---|",
        f"| plain (MONAI MLFlowHandler) | {med['plain']:.3f} s |",
        f"| recovery (MLflowRunHandler + per-epoch resumable checkpoint with random states + run lock) | "
        f"{med['recovery']:.3f} s |",
        f"| ratio recovery / plain | {med['recovery'] / med['plain']:.3f} (goal <= 1.02) |",
    ]
    emit(lines, args.out_md)


if __name__ == "__main__":
    main()
