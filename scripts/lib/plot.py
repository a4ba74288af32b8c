"""scripts/plot DIR: regenerate summary.json, plots/ and REPORT.md from
DIR/results.json without running any benchmark."""

import argparse
import sys

import report
from results import ResultsError


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="scripts/plot",
        description="Regenerate summary.json, plots/ and REPORT.md from DIR/results.json.")
    parser.add_argument("dir", help="a run directory, e.g. reports/latest")
    args = parser.parse_args(argv)
    try:
        written = report.generate(args.dir)
    except ResultsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (ValueError, KeyError, TypeError, AttributeError) as e:  # a results.json of an unexpected shape
        print(f"error: malformed results in {args.dir}: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: cannot write into {args.dir}: {e.strerror or e}: {e.filename or ''}", file=sys.stderr)
        return 1
    print(f"wrote {written[-1]} ({len(written)} files)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
