"""``python -m weakseg.annotations simulate|check ...``: write an annotation file from full masks, or validate one."""

from __future__ import annotations

import argparse
import json
import sys


def _num_masks(v: str):
    return v if v.strip().lower() == "all" else int(v)


def main(argv: list[str] | None = None) -> int:
    from weakseg.annotations import (AnnotationError, dataset_sections, load_weak_annotations,
                                     simulate_weak_annotations)

    ap = argparse.ArgumentParser(prog="python -m weakseg.annotations", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("simulate", help="derive weak labels from the masks of a data folder and write the file")
    sim.add_argument("--dataset_dir", required=True,
                     help="MSD-layout folder (dataset.json) or a folder with images/ and labels/ (or masks/)")
    sim.add_argument("--out", required=True, help="the annotation file to write (.json)")
    sim.add_argument("--kinds", default="size,boxes,classes",
                     help="comma-separated subset of size,boxes,classes,centre (default: size,boxes,classes)")
    sim.add_argument("--num_masks", type=_num_masks, default=0,
                     help="cases (or slices, --mask_unit slice) that keep their full mask: a number or 'all'")
    sim.add_argument("--mask_unit", choices=("case", "slice"), default="case")
    sim.add_argument("--box_fraction", type=float, default=0.5,
                     help="share of the cases without masks that get boxes; the rest get image-level classes")
    sim.add_argument("--seed", type=int, default=0, help="seed of the train/val/test split (by case)")
    sim.add_argument("--mask_seed", type=int, default=None, help="seed of the mask and box choice (default: --seed)")
    sim.add_argument("--split_fractions", default="0.7,0.1,0.2", help="train,val,test fractions (by case)")
    sim.add_argument("--slice_axis", type=int, default=0, help="slice axis of 3D volumes")
    sim.add_argument("--min_foreground", type=float, default=0.01,
                     help="3D: annotate the slices with at least this foreground fraction")
    sim.add_argument("--name", default=None, help="name of the annotation set (default: the file name)")
    chk = sub.add_parser("check", help="validate an annotation file and print what it holds")
    chk.add_argument("file")
    chk.add_argument("--dataset_dir", default=None, help="folder the relative paths start from (default: the file's)")
    args = ap.parse_args(argv)
    try:
        if args.command == "simulate":
            fractions = [float(x) for x in args.split_fractions.split(",")]
            sections, labels = dataset_sections(args.dataset_dir, fractions, args.seed)
            desc = simulate_weak_annotations(
                sections, args.dataset_dir, labels, kinds=[k.strip() for k in args.kinds.split(",") if k.strip()],
                num_masks=args.num_masks, mask_unit=args.mask_unit, box_fraction=args.box_fraction,
                seed=args.seed if args.mask_seed is None else args.mask_seed, slice_axis=args.slice_axis,
                min_foreground=args.min_foreground, name=args.name, out=args.out,
                provenance={"split_seed": args.seed, "split_fractions": fractions})
            n = sum(len(c.get("slices", [c])) for c in desc["training"])
            print(f"wrote {args.out}: {len(desc['training'])} training cases, {n} annotated slices, "
                  f"{len(desc.get('validation', []))} validation and {len(desc.get('test', []))} test cases")
            args.file = args.out
        ann = load_weak_annotations(args.file, dataset_dir=args.dataset_dir)
        summary = {sec: len(cases) for sec, cases in ann.sections.items()}
        counts = {k: sum(1 for c in ann.cases("training") for r in c["slices"] if r.get(k)) for k in
                  ("size", "boxes", "classes", "centre", "mask")}
        print(json.dumps({"name": ann.name, "labels": ann.labels, "cases": summary, "training slices with": counts}))
    except (AnnotationError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
