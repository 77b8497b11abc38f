"""``surgery runs``: the run store as a table, cross-run comparisons, labels and deletion.

``surgery runs`` lists every stored run, one row per (run, method), with the headline numbers the run has
already computed (``--compute`` computes what is missing first); ``runs compare H1 H2 ...`` writes the per-class
comparison and side-by-side figures; ``runs label H TEXT`` and ``runs rm H`` keep the store tidy. Hash prefixes are
accepted when unique. ``surgery report --runs H1,H2`` (the report command) writes one HTML file comparing runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from surgery_core.errors import SurgeryError

TEXT_COLUMNS = ("run", "label", "dataset", "images", "arch", "weights", "depth", "input", "window", "box rule",
                "method")


def _store(args):
    from surgery_core.run.store import RunStore, default_store

    return RunStore(args.store) if args.store else default_store()


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4f}" if v == v else "n/a"
    return str(v)


def _cmd_list(args) -> int:
    from surgery_core.progress import Progress
    from surgery_core.run import stored

    from surgery_core.errors import InputError
    from surgery_core.model.methods import METHODS

    if args.store and not Path(args.store).is_dir():  # listing never creates a store
        raise InputError(args.store, "no run store here (not a folder)")
    if args.method and args.method not in METHODS:
        raise InputError(None, f"--method {args.method}: unknown method; registered: {', '.join(METHODS)}")
    store = _store(args)
    runs = stored.list_stored(store)
    if args.compute:
        bars = Progress(sys.stderr.isatty() if args.progress is None else args.progress)
        todo = [r for r in runs if not all(r.products.values())]
        with bars.bar("computing missing products", sum(not ok for r in todo for ok in r.products.values()),
                      "product") as bar:
            def step(done: int, total: int, what: str) -> None:
                bar.set_postfix_str(what)
                if done:
                    bar.update(1)

            stored.compute_missing(store, todo, progress=step)
        runs = stored.list_stored(store)
    rows = stored.leaderboard(store, runs)
    if args.dataset:
        rows = [r for r in rows if args.dataset.lower() in r["dataset"].lower()]
    if args.method:
        rows = [r for r in rows if r["method"] == args.method]
    if args.json:
        print(json.dumps({"store": str(store.root), "runs": len(runs), "rows": rows,
                          "columns": {h.key: h.doc for h in stored.HEADLINES}}, indent=2))
        return 0
    if args.csv:
        import pandas as pd

        sys.stdout.write(pd.DataFrame(rows).to_csv(index=False))
        return 0
    if not rows:
        print(f"no stored runs in {store.root / 'runs'}" if not runs else
              f"none of the {len(runs)} stored runs in {store.root / 'runs'} matches --dataset/--method")
        return 0
    cols = list(TEXT_COLUMNS) + [h.key for h in stored.HEADLINES] + [stored.NOT_COMPUTED]
    product_of = {h.key: h.product.replace("_", " ") for h in stored.HEADLINES}
    table = [[stored.NOT_COMPUTED if product_of.get(c, "?") in r[stored.NOT_COMPUTED] else _fmt(r.get(c))
              for c in cols] for r in rows]
    widths = [max(len(c), *(len(t[j]) for t in table)) for j, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for t in table:
        print("  ".join(x.ljust(w) for x, w in zip(t, widths)))
    missing = sum(1 for r in runs if not all(r.products.values()))
    print(f"\n{len(runs)} runs in {store.root / 'runs'}; mAP: VOC2007 11-point at the run's box rule; CorLoc: "
          "top box per class and image at IoU 0.5; "
          "pointing games over all (image, GT class) pairs; — = not scored by the run (or no GT)"
          + (f"; {missing} runs have products not computed ('surgery runs --compute')" if missing else ""))
    return 0


def _pairs(args, store, hashes: list[str], methods_text: str | None):
    """(Pair list, Pairing): each hash opened from the store, each with its method (one for all, or one each)."""
    from surgery_core.run import stored
    from surgery_core.share.crossrun import MAX_PAIRS, MIN_PAIRS, Pair, check_pairs, pairing_for

    if not MIN_PAIRS <= len(hashes) <= MAX_PAIRS:
        raise SurgeryError(f"compare {MIN_PAIRS} to {MAX_PAIRS} runs, not {len(hashes)}")
    listed = stored.list_stored(store)
    chosen = [stored.resolve(store, h, listed) for h in hashes]
    methods = [m.strip() for m in (methods_text or "").split(",") if m.strip()]
    if methods and len(methods) not in (1, len(chosen)):
        raise SurgeryError(f"--methods {methods_text}: give one method for every run, or one per run "
                           f"({len(chosen)} runs)")
    if not methods:
        common = [m for m in chosen[0].methods if all(m in r.methods for r in chosen)]
        methods = ["vv_mixed" if "vv_mixed" in common else (common or chosen[0].methods)[0]]
    methods = methods * len(chosen) if len(methods) == 1 else methods
    runs = {}
    pairs = []
    for sr, m in zip(chosen, methods):
        if sr.name not in runs:
            runs[sr.name] = stored.open_stored(store, sr)
        pairs.append(Pair(runs[sr.name], m, sr.label))
    check_pairs(pairs)
    return pairs, pairing_for(pairs)


def _table_options(args, pairs) -> tuple[str, str, float]:
    from surgery_core.share.crossrun import common_options

    opts = common_options(pairs)
    for what, given, have in (("--protocol", args.protocol, opts["protocols"]),
                              ("--interp", args.interp, opts["interps"])):
        if given not in have:
            raise SurgeryError(f"{what} {given}: not scored by every run (common: {', '.join(have) or 'none'})")
    iou = float(args.iou)
    if not 0 < iou <= 1:
        raise SurgeryError(f"--iou {args.iou}: must lie in (0, 1]")
    return args.protocol, args.interp, iou


def _cmd_compare(args) -> int:
    from surgery_core.share.crossrun_report import write_comparison

    if args.samples < 0:
        raise SurgeryError(f"--samples {args.samples}: must be 0 or more")
    store = _store(args)
    pairs, pairing = _pairs(args, store, args.runs, args.methods)
    protocol, interp, iou = _table_options(args, pairs)
    paths = write_comparison(pairs, pairing, args.out, protocol, interp, iou, samples=args.samples)
    print(f"{pairing.summary()}: " + ", ".join(p.name for p in pairs))
    if pairing.gt_problem:
        print(f"note: no per-class table, the ground truth differs ({pairing.gt_problem}); figures written",
              file=sys.stderr)
    for name, path in paths.items():
        print(f"wrote {path}")
    return 0


def _cmd_label(args) -> int:
    from surgery_core.run import stored

    store = _store(args)
    run = stored.resolve(store, args.run)
    stored.set_label(run, args.label, args.note)
    print(f"run {run.run_hash}: label {run.label!r}" + (f", note {run.note!r}" if run.note else ""))
    return 0


def _cmd_rm(args) -> int:
    from surgery_core.run import stored

    store = _store(args)
    run = stored.resolve(store, args.run)
    size = stored.folder_size(run.folder) / 1e6
    if not args.yes:
        if not sys.stdin.isatty():
            raise SurgeryError(f"deleting run {run.title()} needs a confirmation: pass --yes")
        answer = input(f"Delete run {run.title()} ({run.name}, {size:.1f} MB)? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    stored.delete_run(store, run)
    print(f"deleted run {run.title()} ({size:.1f} MB; its grids stay in the store for runs of the same model "
          "and input)")
    return 0


def report_runs(args) -> int:
    """``surgery report --runs H1,H2,...``: one self-contained HTML file comparing stored runs."""
    from surgery_core.files import atomic_write_text
    from surgery_core.run.store import RunStore, default_store
    from surgery_core.share.crossrun_report import build_runs_html

    store = RunStore(args.store) if args.store else default_store()
    hashes = [h.strip() for h in args.runs.split(",") if h.strip()]
    pairs, pairing = _pairs(args, store, hashes, args.methods)
    ns = argparse.Namespace(protocol=args.runs_protocol, interp=args.runs_interp, iou=args.runs_iou)
    protocol, interp, iou = _table_options(ns, pairs)
    out = Path(args.out) if args.out else Path("surgery_runs_" + "_".join(p.run.run_hash[:8] for p in pairs) + ".html")
    atomic_write_text(out, build_runs_html(pairs, pairing, protocol, interp, iou, samples=args.samples_count))
    if pairing.gt_problem:
        print(f"note: no per-class table, the ground truth differs ({pairing.gt_problem})", file=sys.stderr)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): {pairing.summary()}, "
          + ", ".join(p.name for p in pairs))
    return 0


def add_report_arguments(r: argparse.ArgumentParser) -> None:
    """``surgery report``'s options for comparing stored runs (``--runs``)."""
    r.add_argument("--runs", help="comma-separated stored run hashes (unique prefixes): one HTML file comparing "
                                  "them instead of one run's report (see 'surgery runs')")
    r.add_argument("--runs-protocol", dest="runs_protocol", default="present", help="with --runs: protocol")
    r.add_argument("--runs-interp", dest="runs_interp", default="voc07", help="with --runs: interpolation")
    r.add_argument("--runs-iou", dest="runs_iou", type=float, default=0.5, help="with --runs: IoU threshold")


def add_parser(sub) -> None:
    p = sub.add_parser("runs", help="the stored runs side by side: list, compare, label, delete")
    p.add_argument("--store", help="run store folder (default: $SURGERY_STORE or ~/.cache/surgery/store)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the table as JSON")
    out.add_argument("--csv", action="store_true", help="print the table as CSV")
    p.add_argument("--dataset", help="only runs whose dataset name contains this text")
    p.add_argument("--method", help="only this method's rows")
    p.add_argument("--compute", action="store_true",
                   help="first compute the AP tables, quality and CorLoc that runs lack (from their stored grids)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    p.set_defaults(func=_cmd_list)
    rsub = p.add_subparsers(dest="runs_command", parser_class=type(p))

    c = rsub.add_parser("compare", help="per-class comparison (CSV, markdown) and side-by-side figures")
    c.add_argument("runs", nargs="+", metavar="RUN", help="2 to 4 run hashes (unique prefixes)")
    c.add_argument("--methods", help="one method for every run, or one per run, comma-separated "
                                     "(default: vv_mixed when every run has it)")
    c.add_argument("--out", required=True, help="output folder")
    c.add_argument("--protocol", default="present", help="present or open (default present)")
    c.add_argument("--interp", default="voc07", help="voc07, voc or coco (default voc07)")
    c.add_argument("--iou", default="0.5", help="IoU threshold of the table (default 0.5)")
    c.add_argument("--samples", type=int, default=4, help="shared images drawn side by side (default 4)")
    c.add_argument("--store", help=argparse.SUPPRESS, default=argparse.SUPPRESS)
    c.set_defaults(func=_cmd_compare)

    lab = rsub.add_parser("label", help="give a run a label (and a note)")
    lab.add_argument("run", help="run hash (unique prefix)")
    lab.add_argument("label", help="free text, e.g. 'RemoteCLIP B/32 @448'")
    lab.add_argument("--note", help="who, why")
    lab.add_argument("--store", help=argparse.SUPPRESS, default=argparse.SUPPRESS)
    lab.set_defaults(func=_cmd_label)

    rm = rsub.add_parser("rm", help="delete a stored run (asks first; --yes to skip)")
    rm.add_argument("run", help="run hash (unique prefix)")
    rm.add_argument("--yes", action="store_true", help="delete without asking")
    rm.add_argument("--store", help=argparse.SUPPRESS, default=argparse.SUPPRESS)
    rm.set_defaults(func=_cmd_rm)
