"""
Every speed ratio of the project in one call, so that one run on a GPU machine (or the CPU) measures all of them:

- ``size``: object size vs scipy; training step with the size loss, the size baselines and size-matched
  fine-tuning vs a BCE step (``size_speed.py``);
- ``distance``: signed distance maps vs scipy and MONAI (``distance_speed.py``);
- ``edpcnn``: DP forward banded vs dense, EDPCNN training iteration and inference vs a U-Net (``edpcnn.py --speed``);
- ``pipeline``: data-pipeline overhead of an epoch, inference throughput (``pipeline_speed.py``).

Each part runs as its own process (a failing part is reported and the others go on), writes its markdown table,
and the suite writes one file with all tables, the device and the date.

    python benchmarks/speed_suite.py --device cpu --out_md benchmarks/results/speed_suite_cpu.md
    python benchmarks/speed_suite.py --device cuda --out_md benchmarks/results/speed_suite_cuda.md
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"

# part -> (script, arguments on CPU, arguments on a GPU); the CPU runs are shortened to fit a 2-core machine
PARTS = {
    "size": ("size_speed.py", ["--reps", "5"], ["--reps", "15"]),
    "distance": ("distance_speed.py", ["--reps", "3"], ["--reps", "10"]),
    "edpcnn": ("edpcnn.py", ["--speed", "--speed_iterations", "20", "--speed_num_samples", "1", "10",
                             "--dataset_dir", str(DATA / "Sunnybrook_SCD_5patients")],
               ["--speed", "--speed_iterations", "300", "--speed_num_samples", "1", "10",
                "--dataset_dir", str(DATA / "Sunnybrook_SCD_5patients")]),
    "pipeline": ("pipeline_speed.py", [], []),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS))
    ap.add_argument("--dataset_dir", default=str(DATA / "Task04_Hippocampus"), help="hippocampus data (size, "
                    "distance, pipeline parts)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per part")
    ap.add_argument("--out_md", default=None)
    args = ap.parse_args()
    sections, failed = [], []
    t_all = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.parts:
            script, cpu_args, gpu_args = PARTS[name]
            out = Path(tmp) / f"{name}.md"
            cmd = [sys.executable, str(HERE / script), "--device", args.device, "--out_md", str(out),
                   *(gpu_args if args.device == "cuda" else cpu_args)]
            if "--dataset_dir" not in cmd:
                cmd += ["--dataset_dir", args.dataset_dir]
            print(f"[{name}] {' '.join(cmd[1:])}", flush=True)
            t0 = time.time()
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
                ok = proc.returncode == 0 and out.exists()
                why = proc.stderr[-2000:] if not ok else ""
            except subprocess.TimeoutExpired:
                ok, why = False, f"timed out after {args.timeout} s"
            dt = time.time() - t0
            print(f"[{name}] {'done' if ok else 'FAILED'} in {dt:.0f} s", flush=True)
            if ok:
                sections += [f"### {name} (`{script}`, {dt:.0f} s)", "", out.read_text().strip(), ""]
            else:
                failed.append(name)
                sections += [f"### {name} (`{script}`): failed", "", "```", why.strip(), "```", ""]
    head = [f"# Speed suite, device {args.device}, {time.strftime('%Y-%m-%d')}", "",
            f"`python benchmarks/speed_suite.py --device {args.device}`; {time.time() - t_all:.0f} s in all"
            + (f"; failed: {', '.join(failed)}" if failed else "") + ".", ""]
    text = "\n".join(head + sections)
    print(text)
    if args.out_md:
        Path(args.out_md).write_text(text + "\n")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
