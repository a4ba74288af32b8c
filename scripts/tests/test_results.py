import json
import tempfile
import unittest
from pathlib import Path

from synthetic import entry, error_entry

import results as res


class ParseNameTest(unittest.TestCase):
    def test_splits_workload_model_and_numeric_params(self):
        parsed = res.parse_name("cpu_hash/process_pool/block_bytes:1024/grain:8/ship:seed/workers:2/real_time")
        self.assertEqual(parsed["workload"], "cpu_hash")
        self.assertEqual(parsed["model"], "process_pool")
        self.assertEqual(parsed["params"], {"block_bytes": 1024, "grain": 8, "ship": "seed", "workers": 2})

    def test_run_settings_are_not_params(self):
        parsed = res.parse_name("blocking_stall/fibers/kind:cpu/work_us:10/workers:2/iterations:1/repeats:1/real_time")
        self.assertEqual(parsed["params"], {"kind": "cpu", "work_us": 10, "workers": 2})

    def test_float_values(self):
        self.assertEqual(res.parse_name("w/m/work_us:2.5")["params"], {"work_us": 2.5})

    def test_aggregate_suffix_removed(self):
        self.assertEqual(res.base_name("a/b/x:1_median"), "a/b/x:1")
        self.assertEqual(res.base_name("a/b/x:1"), "a/b/x:1")


class ReduceRunsTest(unittest.TestCase):
    def test_median_aggregate_preferred(self):
        name = "w/m/x:1"
        reps = [entry(name, 1.0), entry(name, 2.0), entry(name, 9.0)]
        median = dict(entry(name, 2.0), name=name + "_median", run_type="aggregate", aggregate_name="median")
        mean = dict(entry(name, 4.0), name=name + "_mean", run_type="aggregate", aggregate_name="mean")
        [record] = res.reduce_runs(reps + [mean, median])
        self.assertEqual(record["bytes_per_second"], 2.0)

    def test_runs_and_spread_over_repetitions(self):
        name = "w/m/x:1"
        reps = [dict(entry(name, b), repetition_index=i) for i, b in enumerate((1.0, 2.0, 9.0))]
        median = dict(entry(name, 2.0), name=name + "_median", run_type="aggregate", aggregate_name="median")
        [record] = res.reduce_runs(reps + [median])
        self.assertEqual(record["repetitions"], 3)
        self.assertEqual(record["runs"]["bytes_per_second"], [1.0, 2.0, 9.0])
        self.assertEqual(res.run_values(record, "bytes_per_second"), [1.0, 2.0, 9.0])
        self.assertEqual(res.spread(record, "bytes_per_second"), [1.0, 9.0])
        self.assertNotIn("repetition_index", record["runs"])  # how runs are numbered, not a measure
        [single] = res.reduce_runs([entry(name, 1.0)])
        self.assertIsNone(res.spread(single, "bytes_per_second"))
        self.assertEqual(res.run_values(single, "bytes_per_second"), [1.0])

    def test_run_values_without_repetitions_kept(self):
        # Only a median aggregate: its value stands for the runs; non-numbers are dropped.
        self.assertEqual(res.run_values({"x": 3.0}, "x"), [3.0])
        self.assertEqual(res.run_values({"runs": {"x": [1.0, float("nan"), 2.0]}}, "x"), [1.0, 2.0])
        self.assertEqual(res.run_values({}, "x"), [])

    def test_mean_of_iterations_without_aggregates(self):
        name = "w/m/x:1"
        [record] = res.reduce_runs([entry(name, 1.0, real_time=1.0, time_unit="us"),
                                    entry(name, 3.0, real_time=3.0, time_unit="us")])
        self.assertEqual(record["bytes_per_second"], 2.0)
        self.assertEqual(record["real_time_ns"], 2000.0)

    def test_a_second_pass_adds_to_the_runs_of_its_cell(self):
        # scripts/bench's second pass runs a cell again with its own repetition count.
        first, second = "w/m/x:1/iterations:1/repeats:5/real_time", "w/m/x:1/iterations:1/repeats:9/real_time"
        other = "w/m/x:2/iterations:1/repeats:5/real_time"
        records = res.reduce_runs([entry(first, 1.0), entry(first, 2.0), entry(other, 5.0),
                                   entry(second, 3.0), entry(second, 4.0), entry(second, 5.0)])
        self.assertEqual([r["name"] for r in records], [first, other])
        self.assertEqual(records[0]["repetitions"], 5)
        self.assertEqual(records[0]["runs"]["bytes_per_second"], [1.0, 2.0, 3.0, 4.0, 5.0])
        self.assertEqual(res.cell_name(second + "_median"), "w/m/x:1/iterations:1/real_time")
        self.assertEqual(res.registered_name(second + "_median"), "w/m/x:1")
        self.assertEqual(res.registered_name("w/m/x:1/workers:2/min_time:0.100/process_time/real_time"),
                         "w/m/x:1/workers:2")

    def test_any_failed_repetition_makes_an_error(self):
        name = "w/m/x:1"
        [record] = res.reduce_runs([entry(name, 1.0), error_entry(name, "mismatch")])
        self.assertEqual(record["error"], "mismatch")
        self.assertNotIn("bytes_per_second", record)


class WriteResultsTest(unittest.TestCase):
    def test_one_entry_per_line_and_the_same_data(self):
        path = Path(tempfile.mkdtemp()) / res.RESULTS_FILE
        for data in ({"command": ["x"], "context": {"a": "1"}, "benchmarks": [{"name": "w/m", "v": 1.5}, {"name": "w/n"}]},
                     {"benchmarks": [{"name": "w/m"}]}):
            res.write_results(path, data)
            text = path.read_text()
            self.assertEqual(json.loads(text), data)
            lines = [line.rstrip(",") for line in text.splitlines()]
            for entry in data["benchmarks"]:
                self.assertIn("    " + json.dumps(entry), lines)

    def test_entries_lose_only_what_reading_gives_back(self):
        path = Path(tempfile.mkdtemp()) / res.RESULTS_FILE
        iteration = {"name": "w/m/x:1/repeats:2", "run_name": "w/m/x:1/repeats:2", "family_index": 3,
                     "per_family_instance_index": 0, "threads": 1, "repetition_index": 1, "real_time": 2.0}
        median = dict(iteration, name="w/m/x:1/repeats:2_median", aggregate_name="median")
        renamed = dict(iteration, run_name="w/other", threads=2)
        unread = [dict(median, name=f"w/m/x:1/repeats:2_{a}", run_type="aggregate", aggregate_name=a)
                  for a in ("mean", "stddev", "cv")]
        res.write_results(path, {"benchmarks": [iteration, median, *unread, renamed]})
        written = json.loads(path.read_text())["benchmarks"]
        self.assertEqual(len(written), 3, "the mean, stddev and cv aggregates are left out")
        self.assertEqual(written[0], {"name": "w/m/x:1/repeats:2", "repetition_index": 1, "real_time": 2.0})
        self.assertEqual(written[1]["name"], "w/m/x:1/repeats:2_median")
        self.assertNotIn("run_name", written[1])
        self.assertEqual((written[2]["run_name"], written[2]["threads"]), ("w/other", 2))
        self.assertNotIn("family_index", written[2])
        # What the reading makes of them is unchanged.
        self.assertEqual(res.reduce_runs(written), res.reduce_runs([iteration, median, *unread, renamed]))


class LoadTest(unittest.TestCase):
    def setUp(self):
        self.dir = Path(tempfile.mkdtemp())

    def assertLoadFails(self, text, fragment):
        if text is not None:
            (self.dir / "results.json").write_text(text)
        with self.assertRaises(res.ResultsError) as caught:
            res.load(self.dir)
        self.assertIn(fragment, str(caught.exception))

    def test_missing_file(self):
        self.assertLoadFails(None, "does not exist")

    def test_malformed(self):
        self.assertLoadFails("{not json", "not valid JSON")

    def test_no_benchmarks_list(self):
        self.assertLoadFails(json.dumps({"context": {}}), '"benchmarks"')
        self.assertLoadFails(json.dumps([1, 2]), '"benchmarks"')

    def test_entry_without_name(self):
        self.assertLoadFails(json.dumps({"benchmarks": [{"real_time": 1}]}), "no name")



class PeerCalibrationTest(unittest.TestCase):
    """The report's Calibration table: each peer's SHA-256 against the kernel's, or
    why the peer did not run; a context entry concbench did not write is an error."""

    def rows(self, peers):
        import report
        return report._peer_rows({"peers": json.dumps(peers) if not isinstance(peers, str) else peers}, 1e9)

    def test_rate_missing_and_failed(self):
        rows = self.rows({"go": {"version": "go1.19", "sha256_16k_bytes_per_s": 2e8},
                          "node": {"missing": "needs node: the Debian package nodejs (peer node version exited:\na|b)"},
                          "asyncio": {"version": "Python 3.11", "sha256_error": "its sum differs"}})
        self.assertEqual(rows[0][:2], ("SHA-256 in go (crypto/sha256), 16 KiB", "200 MB/s"))
        self.assertIn("0.20× concbench's kernel", rows[0][2])
        self.assertEqual(rows[1], ("peer node", "not run",
                                   "needs node: the Debian package nodejs (peer node version exited:; a\\|b)"))
        self.assertEqual(rows[2][1:], ("failed", "its sum differs; its blocking_stall cells did not run"))

    def test_malformed_context_is_an_error(self):
        with self.assertRaises(res.ResultsError):
            self.rows("{not json")


if __name__ == "__main__":
    unittest.main()
