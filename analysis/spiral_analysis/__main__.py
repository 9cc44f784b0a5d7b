"""Command line (Debian's Python, PYTHONPATH=analysis):

    /usr/bin/python3 -m spiral_analysis report RUN.h5 [-o DIR] [--allow-incomplete]
    /usr/bin/python3 -m spiral_analysis compare SWEEP_DIR [-o DIR] [--by KEY] [--metrics m1,m2]
                                                 [--baseline VALUE]
    /usr/bin/python3 -m spiral_analysis fragility STRESS.h5 [-o DIR]
    /usr/bin/python3 -m spiral_analysis branches PARENT.h5 BRANCH.h5 ... --table GROUP
                                                 --column COL [-o FILE.png]

``branches`` draws one column of a run and of its ``spiral resume`` branches
joined to the parent's past (default FILE: PARENT_branches_COL.png).
``report`` writes DIR/*.png, DIR/report.md and DIR/report.html (images
embedded) and prints the paths of report.md and report.html.  ``compare``
writes compare.md, compare.csv, compare.png and compare.html (default DIR:
SWEEP_DIR/compare); ``fragility`` fragility.md, .csv, .png and .html
(default DIR: STRESS_fragility beside the file); both print the paths
written, one per line.  Exit status: 0 ok, 2 usage error or bad input (a
missing / unreadable / non-spiral / incomplete run file, a directory that
is not a sweep, a file that is not a stress file, an unknown axis or metric).
"""
import argparse
import sys

from .load import SpiralFileError


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="python3 -m spiral_analysis",
        description="Analyse spiral run files, sweeps and stress tests (HDF5).")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    rp = sub.add_parser("report", help="write PNG figures, report.md and report.html for a run",
                        description="Write PNG figures, report.md and a self-contained report.html "
                                    "(figures embedded) for one run; print their paths.")
    rp.add_argument("run", metavar="RUN.h5", help="a file written by 'spiral run'")
    rp.add_argument("-o", "--output", metavar="DIR",
                    help="output directory (default: RUN_report beside RUN.h5)")
    rp.add_argument("--allow-incomplete", action="store_true",
                    help="also report a run whose status is not 'complete'")
    cp = sub.add_parser("compare", help="compare the arms of a sweep with confidence intervals",
                        description="Per-arm mean and 95 %% t interval over replicate seeds, and "
                                    "the difference to a baseline arm, paired by seed when the "
                                    "arms share seeds; writes compare.md, .csv, .png, .html.")
    cp.add_argument("sweep", metavar="SWEEP_DIR", help="a directory written by 'spiral sweep'")
    cp.add_argument("-o", "--output", metavar="DIR", help="output directory (default: SWEEP_DIR/compare)")
    cp.add_argument("--by", metavar="KEY",
                    help="the axis compared (lines / bars); default: the first category axis, "
                         "else the last axis")
    cp.add_argument("--metrics", metavar="M1,M2",
                    help="comma-separated metrics: /summary columns of the sweep (patterns like "
                         "max_drawdown_* work) or run-file metrics (liquidation_losses, ...)")
    cp.add_argument("--baseline", metavar="VALUE",
                    help="the --by value the others are compared with (default: the first)")
    fp = sub.add_parser("fragility", help="draw the fragility curve of a 'spiral stress' file",
                        description="Fragility curve (metric mean vs parameter, per-seed values, "
                                    "threshold, critical value) as fragility.png + .md/.csv/.html.")
    fp.add_argument("stress", metavar="STRESS.h5", help="a file written by 'spiral stress'")
    fp.add_argument("-o", "--output", metavar="DIR",
                    help="output directory (default: STRESS_fragility beside the file)")
    bp = sub.add_parser("branches", help="one column of a run and its branches over time",
                        description="Plot a table column of a run and of its `spiral resume` "
                                    "branches (each joined to the parent's rows before its branch "
                                    "point) as one PNG.")
    bp.add_argument("parent", metavar="PARENT.h5", help="the run the snapshots were taken from")
    bp.add_argument("branches", metavar="BRANCH.h5", nargs="+", help="'spiral resume' outputs")
    bp.add_argument("--table", required=True, metavar="GROUP", help="e.g. protocols/maker")
    bp.add_argument("--column", required=True, metavar="COL", help="e.g. bad_debt")
    bp.add_argument("-o", "--output", metavar="FILE.png",
                    help="default: PARENT_branches_COL.png beside the parent")
    args = ap.parse_args(argv)
    if args.command is None:
        ap.print_usage(sys.stderr)
        print(f"{ap.prog}: error: a COMMAND is required (report, compare, fragility or branches)",
              file=sys.stderr)
        return 2
    try:
        if args.command == "report":
            from .report import write_report  # matplotlib only when needed
            paths = write_report(args.run, args.output, allow_incomplete=args.allow_incomplete)
        elif args.command == "compare":
            from .compare import write_compare
            ms = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
            paths = write_compare(args.sweep, args.output, by=args.by, metrics=ms,
                                  baseline=args.baseline)
        elif args.command == "branches":
            import os
            from . import plots
            out = args.output or (os.path.splitext(args.parent)[0] +
                                  f"_branches_{args.column}.png")
            try:
                fig = plots.branches(args.parent, args.branches, args.table, args.column)
            except KeyError as e:
                raise ValueError(str(e).strip('"')) from None
            paths = [plots.save(fig, out)]
        else:
            from .compare import write_fragility
            paths = write_fragility(args.stress, args.output)
    except (SpiralFileError, ValueError) as e:
        print(f"spiral_analysis: error: {e}", file=sys.stderr)
        return 2
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
