"""scripts/plot DIR: regenerate summary.json, plots/ and REPORT.md from
DIR/results.json without running any benchmark."""

import argparse
import sys

import report
from results import run_for_user


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="scripts/plot",
        description="Regenerate summary.json, plots/ and REPORT.md from DIR/results.json.")
    parser.add_argument("dir", help="a run directory, e.g. reports/latest")
    args = parser.parse_args(argv)
    status, written = run_for_user(lambda: report.generate(args.dir), args.dir, args.dir)
    if not status:
        print(f"wrote {written[-1]} ({len(written)} files)", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
