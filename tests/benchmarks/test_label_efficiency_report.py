"""The label-efficiency study's table regenerates from its row files: means, standard deviations and the paired
differences to masks only, checked against numbers worked by hand."""

import json
import sys

import pytest

from ..conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
label_efficiency = pytest.importorskip("label_efficiency")


def _row(budget, seed, method, iou, **kw):
    return {"budget": budget, "seed": seed, "method": method, "test": {"mean_slice_iou": iou}, **kw}


def test_table_from_row_files(tmp_path):
    rows = [
        _row("64", 0, "masks_only", 0.50), _row("64", 1, "masks_only", 0.60),
        _row("64", 0, "size_matched", 0.55, selected_epoch=3), _row("64", 1, "size_matched", 0.61, selected_epoch=0),
        _row("all", 0, "masks_only", 0.70),
    ]
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text("\n".join(json.dumps(r) for r in rows[:3]) + "\n")
    # a later file replaces the row of the same (budget, seed, method)
    second.write_text("\n".join(json.dumps(r) for r in rows[3:] + [_row("64", 0, "size_matched", 0.56)]) + "\n")
    text = label_efficiency.report([str(first), str(second)], out_png=str(tmp_path / "p.png"))
    lines = {ln.split(" | ")[0].lstrip("| "): ln for ln in text.splitlines() if ln.startswith("| ")}
    # masks only at m = 64: mean 0.55, population std 0.05; at all: 0.70 alone
    assert "| 0.550 ± 0.050 (n=2) | 0.700 (n=1) |" in lines["masks only (converged)"]
    # size-matched: 0.56 and 0.61 -> 0.585 ± 0.025; paired Δ 0.06 and 0.01 -> +0.035 ± 0.025; one run kept its start
    assert "0.585 ± 0.025 (n=2) [start kept 1/2]; Δ +0.035 ± 0.025" in lines["sizes: size-matched masks"]
    assert (tmp_path / "p.png").stat().st_size > 0


def test_published_table_regenerates_from_the_committed_rows():
    """benchmarks/log/label_efficiency.md holds exactly the table that its row files give."""
    results = REPO / "benchmarks" / "results"
    files = [str(results / f"label_efficiency_cpu_{n}.jsonl") for n in
             ("m64_s012", "m16_m256_all_s0", "all_s12_m16_s1_rerun_ema", "m256_s1_masks_kept_rerun_ema", "oracle")]
    text = label_efficiency.report(files)
    page = (REPO / "benchmarks" / "log" / "label_efficiency.md").read_text()
    table = [ln for ln in text.splitlines() if ln.startswith("| ")]
    assert len(table) >= 14 and all(ln in page for ln in table)
