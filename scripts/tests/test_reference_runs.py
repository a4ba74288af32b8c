"""Golden test: every committed run under reports/runs/ regenerates, with the current
scripts, to the summary.json committed beside it. A name changed in C++ but not in
the Python reader, or a summary changed without regenerating the reference runs,
fails here."""

import json
import unittest
from pathlib import Path

import synthetic  # noqa: F401  (puts scripts/lib on the path)
import report
import results

RUNS = Path(__file__).resolve().parents[2] / "reports" / "runs"


def first_difference(a, b, path="summary"):
    """The path of the first value that differs between a and b, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if key not in a or key not in b:
                return f"{path}.{key} (only in {'the regenerated' if key in a else 'the committed'} one)"
            found = first_difference(a[key], b[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path} ({len(a)} items against {len(b)})"
        return next((f for i, (x, y) in enumerate(zip(a, b)) if (f := first_difference(x, y, f"{path}[{i}]"))), None)
    return None if a == b else f"{path} ({a!r} against {b!r})"


class ReferenceRunsTest(unittest.TestCase):
    def test_first_difference(self):
        self.assertIsNone(first_difference({"a": [1, {"b": 2}]}, {"a": [1, {"b": 2}]}))
        self.assertEqual(first_difference({"a": [1, {"b": 2}]}, {"a": [1, {"b": 3}]}), "summary.a[1].b (2 against 3)")
        self.assertEqual(first_difference({"a": 1}, {}), "summary.a (only in the regenerated one)")

    def test_committed_runs_regenerate_to_their_summaries(self):
        runs = sorted(p for p in RUNS.iterdir() if (p / "results.json").is_file()) if RUNS.is_dir() else []
        self.assertTrue(runs, f"no committed run under {RUNS}")
        for run in runs:
            with self.subTest(run=run.name):
                # Through JSON, as report.generate writes it (tuples become lists).
                summaries, _ = report.summarize(results.load(run))
                regenerated = json.loads(json.dumps({"source": results.RESULTS_FILE, "workloads": summaries}))
                committed = json.loads((run / "summary.json").read_text())
                where = first_difference(regenerated, committed)
                self.assertIsNone(where, f"{run.name}: summary.json differs at {where}; regenerate it with "
                                         f"scripts/plot {run.relative_to(RUNS.parents[1])}")
                for workload, summary in regenerated["workloads"].items():
                    self.assertEqual(summary.get("errors"), [], f"{run.name}/{workload} has errors")


if __name__ == "__main__":
    unittest.main()
