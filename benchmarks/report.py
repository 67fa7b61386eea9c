"""
Rebuild the summary table at the top of ``benchmarks/RESULTS.md`` from ``benchmarks/results/summary.json``: one
record per method or target with the keys ``what``, ``figure``, ``device``, ``date``, ``command`` and ``page`` (the
detail page under ``benchmarks/log/``, or an anchor of RESULTS.md). A record whose page does not exist is refused.

    python benchmarks/report.py            # rewrite the table in RESULTS.md
    python benchmarks/report.py --check    # exit 1 when RESULTS.md is not what the records give
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEYS = ("what", "figure", "device", "date", "command", "page")
HEADER = ["| method / target | figure | device | date | command (detail page) |", "|---|---|---|---|---|"]


def summary_table(records: list[dict], root: Path = HERE) -> list[str]:
    """The markdown rows of ``records`` (see module docstring)."""
    lines = list(HEADER)
    for i, r in enumerate(records):
        missing = [k for k in KEYS if not r.get(k)]
        if missing:
            raise ValueError(f"summary record {i} ({r.get('what', '?')}): missing {missing}; expected keys {KEYS}")
        if not r["page"].startswith("#") and not (root / r["page"]).is_file():
            raise FileNotFoundError(f"summary record {i} ({r['what']}): page {r['page']} does not exist under {root}")
        link = f"[{Path(r['page']).stem if not r['page'].startswith('#') else 'below'}]({r['page']})"
        lines.append(f"| {r['what']} | {r['figure']} | {r['device']} | {r['date']} | {r['command']} ({link}) |")
    return lines


def replace_table(text: str, table: list[str]) -> str:
    """``text`` with the table that follows the ``## Summary`` heading replaced by ``table``."""
    lines = text.splitlines()
    start = lines.index("## Summary")
    first = next(i for i in range(start, len(lines)) if lines[i].startswith("| "))
    last = first
    while last < len(lines) and lines[last].startswith("|"):
        last += 1
    return "\n".join(lines[:first] + table + lines[last:]) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", default=str(HERE / "results" / "summary.json"))
    ap.add_argument("--results_md", default=str(HERE / "RESULTS.md"))
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    md = Path(args.results_md)
    new = replace_table(md.read_text(), summary_table(json.loads(Path(args.records).read_text()), md.parent))
    if args.check:
        if new != md.read_text():
            print(f"{md} is out of date: run python benchmarks/report.py", file=sys.stderr)
            sys.exit(1)
        return
    md.write_text(new)
    print(f"wrote the summary table of {md}")


if __name__ == "__main__":
    main()
