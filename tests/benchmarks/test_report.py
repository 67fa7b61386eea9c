"""benchmarks/report.py: RESULTS.md's summary table is what results/summary.json gives, and bad records are refused."""

import json
import sys

import pytest

from ..conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
report = pytest.importorskip("report")


def test_results_md_matches_its_records():
    md = REPO / "benchmarks" / "RESULTS.md"
    records = json.loads((REPO / "benchmarks" / "results" / "summary.json").read_text())
    assert report.replace_table(md.read_text(), report.summary_table(records, md.parent)) == md.read_text()


def test_bad_records_are_refused(tmp_path):
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / "x.md").write_text("# x\n")
    good = {"what": "a", "figure": "0.5", "device": "CPU", "date": "2026-01-01", "command": "`x.py`", "page": "log/x.md"}
    assert report.summary_table([good], tmp_path)[-1] == "| a | 0.5 | CPU | 2026-01-01 | `x.py` ([x](log/x.md)) |"
    with pytest.raises(FileNotFoundError, match="log/y.md"):
        report.summary_table([dict(good, page="log/y.md")], tmp_path)
    with pytest.raises(ValueError, match="figure"):
        report.summary_table([dict(good, figure="")], tmp_path)
