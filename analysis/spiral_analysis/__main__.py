"""Command line: /usr/bin/python3 -m spiral_analysis report RUN.h5 [-o DIR] [--allow-incomplete]

Writes DIR/*.png, DIR/report.md and DIR/report.html (images embedded) and prints
the paths of report.md and report.html, one per line.  Exit status: 0 ok,
2 usage error or a missing / unreadable / non-spiral / incomplete run file.
"""
import argparse
import sys

from .load import SpiralFileError


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="python3 -m spiral_analysis",
        description="Analyse spiral run files (HDF5).")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    rp = sub.add_parser("report", help="write PNG figures, report.md and report.html for a run",
                        description="Write PNG figures, report.md and a self-contained report.html "
                                    "(figures embedded) for one run; print their paths.")
    rp.add_argument("run", metavar="RUN.h5", help="a file written by 'spiral run'")
    rp.add_argument("-o", "--output", metavar="DIR",
                    help="output directory (default: RUN_report beside RUN.h5)")
    rp.add_argument("--allow-incomplete", action="store_true",
                    help="also report a run whose status is not 'complete'")
    args = ap.parse_args(argv)
    if args.command is None:
        ap.print_usage(sys.stderr)
        print(f"{ap.prog}: error: a COMMAND is required (try 'report')", file=sys.stderr)
        return 2
    from .report import write_report  # matplotlib only when needed
    try:
        md, ht = write_report(args.run, args.output, allow_incomplete=args.allow_incomplete)
    except SpiralFileError as e:
        print(f"spiral_analysis: error: {e}", file=sys.stderr)
        return 2
    print(md)
    print(ht)
    return 0


if __name__ == "__main__":
    sys.exit(main())
