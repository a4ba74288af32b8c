import json
import tempfile
import unittest
from pathlib import Path

from synthetic import ReportOutput, error_entry

import results as res
from workloads import producer_consumer as pc

# Messages per second at 1x1 and work_ns 0, by model (thread_pool: at 1 x pool) and Q, at the
# model's largest --workers. At 4x4 every model reaches half as much except fibers (the same).
RATES = {"event_loop": {1: 3e6, 64: 12e6, 1024: 15e6},
         "fibers": {1: 2e6, 64: 24e6, 1024: 30e6},
         "fibers_mt": {1: 1e6, 64: 20e6, 1024: 32e6},
         "thread_pool": {1: 16e6, 64: 10e6, 1024: 10e6},
         "threads_queue": {1: 2e6, 64: 4e6, 1024: 4e6},
         "moodycamel": {1: 1e6, 64: 3e6, 1024: 4e6},
         "spsc_lockfree": {1: 4e6, 64: 16e6, 1024: 16e6}}
# With one worker: fibers_mt twice as fast everywhere (40M/s at 1x1 Q=1024 would be the
# fastest there if the wrong workers were taken), thread_pool half as fast.
ONE_WORKER = {"fibers_mt": 2.0, "thread_pool": 0.5}
# Process CPU over wall; the others keep one CPU busy.
CPUS = {"threads_queue": 1.5, "spsc_lockfree": 2.0}
BLOCKED = {1: 0.9, 64: 0.5, 1024: 0.2}


def name(model, p, c, q, work=0, workers=1):
    return f"{pc.NAME}/{model}/p:{p}/c:{c}/q:{q}/work_ns:{work}/workers:{workers}/iterations:1/process_time/real_time"


def pc_entry(model, p, c, q, rate, work=0, workers=1, cpus=1.0, achieved=0.98, **counters):
    """One cell: M = 100,000 at Q=1 else 1,000,000; wall M / rate; latency p99 = 1e8 / rate µs
    (p50 a tenth of it, p99.9 twice); the latency run achieves `achieved` x its offered rate."""
    full = name(model, p, c, q, work, workers)
    messages = 1e5 if q == 1 else 1e6
    wall_ms = messages / rate * 1e3
    p99 = 1e8 / rate
    entry = {"name": full, "run_name": full, "run_type": "iteration", "repetitions": 1, "repetition_index": 0,
             "iterations": 1, "real_time": wall_ms, "cpu_time": wall_ms * cpus, "time_unit": "ms",
             "p": p, "c": 0 if c == "pool" else c, "q": q, "capacity": q - 1 if model.startswith("fibers") and q > 1 else q,
             "messages": messages, "work_ns": work, "workers": workers, "msgs_per_s": rate,
             "blocked_send_share": BLOCKED[q] / 2, "blocked_time_share": 0.0 if model == "thread_pool" else BLOCKED[q],
             "latency_rate_per_s": rate / 2, "latency_messages": 10000, "latency_samples": 10000,
             "latency_achieved_per_s": rate / 2 * achieved, "latency_p50_us": p99 / 10, "latency_p90_us": p99 / 2,
             "latency_p99_us": p99, "latency_p999_us": p99 * 2, "latency_max_us": p99 * 3}
    entry.update(counters)
    return entry


def repeated(entry, rates, median_rate):
    """entry as three repetitions at rates with a mean and a median aggregate (the mean off)."""
    out = []
    for i, rate in enumerate(rates):
        out.append(dict(entry, repetitions=3, repetition_index=i, msgs_per_s=rate,
                        real_time=entry["messages"] / rate * 1e3))
    for aggregate, rate in (("mean", 99e6), ("median", median_rate)):
        out.append(dict(entry, name=entry["name"] + "_" + aggregate, run_type="aggregate", aggregate_name=aggregate,
                        repetitions=3, msgs_per_s=rate, real_time=entry["messages"] / rate * 1e3))
    return out


def pc_results():
    """Two runs (--workers 1 then 2), shapes 1x1 and 4x4, Q 1, 64 and 1024 at work_ns 0, and
    work_ns 1000 at 1x1 Q=64. event_loop's 1x1 Q=64 ran three repetitions (median 12M/s).
    threads_queue 4x4 Q=1024 failed; moodycamel 4x4 Q=64 fell behind (0.5x offered)."""
    b = []
    for model, by_q in RATES.items():
        for workers in ((1, 2) if model in ONE_WORKER else (1,)):
            scale = ONE_WORKER[model] if workers == 1 and model in ONE_WORKER else 1.0
            shapes = [(1, "pool")] if model == "thread_pool" else [(1, 1)] if model == "spsc_lockfree" else [(1, 1), (4, 4)]
            for p, c in shapes:
                for q, rate in by_q.items():
                    rate *= scale * (0.5 if (p, c) == (4, 4) and model != "fibers" else 1.0)
                    if (model, p, q) == ("threads_queue", 4, 1024):
                        b.append(error_entry(name(model, p, c, q), "result differs from the reference: got count 999"))
                        continue
                    achieved = 0.5 if (model, p, q) == ("moodycamel", 4, 64) else 0.98
                    e = pc_entry(model, p, c, q, rate, workers=workers, cpus=CPUS.get(model, 1.0), achieved=achieved)
                    b += repeated(e, [11e6, 12e6, 13e6], 12e6) if (model, p, q) == ("event_loop", 1, 64) else [e]
    for model, c, rate in (("event_loop", 1, 900e3), ("fibers", 1, 950e3), ("spsc_lockfree", 1, 100e3),
                           ("thread_pool", "pool", 800e3)):
        b.append(pc_entry(model, 1, c, 64, rate, work=1000, workers=2 if model == "thread_pool" else 1))
    run1, run2 = {"workers": "1"}, {"workers": "2"}
    return {"command": ["scripts/bench"],
            "context": dict(run1, date="2025-01-01T00:00:00", cpu_model="Test CPU", cores="2", workers="1,2",
                            producer_consumer_spin_ns_per_iteration="4.2"),
            "runs": [run1, run2], "peers": {}, "benchmarks": b}


def summarize(data):
    records = [r for r in res.reduce_runs(data["benchmarks"]) if r["workload"] == pc.NAME]
    return pc.summarize(records, data)


def drop(data, fragment):
    data["benchmarks"] = [b for b in data["benchmarks"] if fragment not in b["name"]]
    return data


class SummaryTest(unittest.TestCase):
    def setUp(self):
        self.data = pc_results()
        self.summary = summarize(self.data)

    def test_models_workers_shapes_queues(self):
        self.assertEqual(self.summary["models"], list(pc.MODEL_ORDER))
        self.assertEqual(self.summary["workers"], {"event_loop": 1, "fibers": 1, "fibers_mt": 2, "thread_pool": 2,
                                                   "threads_queue": 1, "moodycamel": 1, "spsc_lockfree": 1})
        self.assertEqual(self.summary["shapes"], ["1x1", "4x4"])
        self.assertEqual(self.summary["queues"], [1, 64, 1024])
        self.assertEqual((self.summary["cores"], self.summary["spin_ns_per_iteration"]), (2, 4.2))

    def test_shape_names(self):
        self.assertEqual(pc.shape_of(4, 1), "4x1")
        self.assertEqual(pc.shape_of(1, 0), "1xpool")
        self.assertEqual(pc.shape_of(1, "pool"), "1xpool")

    def test_msgs_per_s_at_largest_workers_and_work_0(self):
        rates = self.summary["msgs_per_s"]
        self.assertEqual(rates["fibers_mt"]["1x1"], {"1": 1e6, "64": 20e6, "1024": 32e6})  # 2 workers, not 1
        self.assertEqual(rates["fibers_mt"]["4x4"]["64"], 10e6)
        self.assertEqual(rates["fibers"]["4x4"]["64"], 24e6)
        self.assertEqual(rates["thread_pool"], {"1xpool": {"1": 16e6, "64": 10e6, "1024": 10e6}})
        self.assertEqual(list(rates["spsc_lockfree"]), ["1x1"])
        # work_ns 1000 is no part of it: 1x1 Q=64 is event_loop's median of three repetitions.
        self.assertEqual(rates["event_loop"]["1x1"]["64"], 12e6)

    def test_median_of_repetitions(self):
        [cell] = [c for c in self.summary["cells"]["event_loop"] if (c["shape"], c["q"], c["work_ns"]) == ("1x1", 64, 0)]
        self.assertEqual(cell["msgs_per_s"], 12e6)
        self.assertAlmostEqual(cell["wall_ms"], 1e6 / 12e6 * 1e3)

    def test_failed_cell_is_an_error_not_a_rate(self):
        [error] = self.summary["errors"]
        self.assertEqual((error["model"], error["shape"], error["q"], error["work_ns"]), ("threads_queue", "4x4", 1024, 0))
        self.assertEqual(error["message"], "result differs from the reference: got count 999")
        self.assertNotIn("1024", self.summary["msgs_per_s"]["threads_queue"]["4x4"])
        self.assertEqual(self.summary["checks"]["verified"], {"held": False, "cells": 49, "errors": 1})

    def test_name_without_a_key_is_an_error(self):
        entry = pc_entry("fibers", 1, 1, 64, 1e6)
        entry["name"] = entry["run_name"] = entry["name"].replace("/q:64", "")
        self.data["benchmarks"].append(entry)
        self.assertEqual(summarize(self.data)["errors"][-1]["message"], "no q in the benchmark name")

    def test_vs_spsc_at_q64_and_by_q(self):
        vs = self.summary["vs_spsc"]
        self.assertAlmostEqual(vs["fibers"], 24 / 16)
        self.assertAlmostEqual(vs["fibers_mt"], 20 / 16)
        self.assertAlmostEqual(vs["thread_pool"], 10 / 16)  # its own 1 x pool
        self.assertAlmostEqual(vs["moodycamel"], 3 / 16)
        self.assertEqual(vs["spsc_lockfree"], 1.0)
        self.assertEqual(self.summary["vs_spsc_by_q"]["event_loop"], {"1": 0.75, "64": 0.75, "1024": 15 / 16})

    def test_vs_spsc_without_spsc_is_null(self):
        summary = summarize(drop(self.data, "/spsc_lockfree/"))
        self.assertEqual(set(summary["vs_spsc"].values()), {None})
        self.assertIn("spsc_lockfree was not measured at 1x1, Q=64, work_ns 0: no model is compared with the "
                      "lock-free limit.", "\n".join(pc.conclusions(summary)))

    def test_vs_spsc_missing_model_cell(self):
        summary = summarize(drop(self.data, "/fibers/p:1/c:1/q:64/work_ns:0/"))
        self.assertIsNone(summary["vs_spsc"]["fibers"])
        self.assertIn("Not compared (no 1x1, Q=64 cell): fibers.", "\n".join(pc.conclusions(summary)))

    def test_q_gain(self):
        gain = self.summary["q_gain"]
        self.assertEqual(gain["fibers"]["1x1"], {"from_q": 1.0, "to_q": 1024.0, "ratio": 15.0})
        self.assertAlmostEqual(gain["thread_pool"]["1xpool"]["ratio"], 10 / 16)
        # threads_queue 4x4 Q=1024 failed: its largest Q there is 64.
        self.assertEqual(gain["threads_queue"]["4x4"], {"from_q": 1.0, "to_q": 64.0, "ratio": 2.0})

    def test_cpu_fields(self):
        [cell] = [c for c in self.summary["cells"]["spsc_lockfree"] if (c["q"], c["work_ns"]) == (64, 0)]
        self.assertAlmostEqual(cell["cpus_busy"], 2.0)
        self.assertAlmostEqual(cell["cpu_ns_per_msg"], 2 * 1e9 / 16e6)  # 125 ns
        self.assertEqual(cell["capacity"], 64)
        self.assertEqual(self.summary["capacity_differs"],
                         [{"model": "fibers", "q": 64, "capacity": 63}, {"model": "fibers", "q": 1024, "capacity": 1023},
                          {"model": "fibers_mt", "q": 64, "capacity": 63},
                          {"model": "fibers_mt", "q": 1024, "capacity": 1023}])

    def test_latency_at_q64(self):
        point = self.summary["latency"]["fibers"]["1x1"]
        self.assertAlmostEqual(point["p99_us"], 1e8 / 24e6)
        self.assertEqual((point["q"], point["fell_behind"]), (64, False))
        self.assertAlmostEqual(point["achieved_share"], 0.98)
        behind = self.summary["latency"]["moodycamel"]["4x4"]
        self.assertEqual((behind["fell_behind"], behind["achieved_share"]), (True, 0.5))
        self.assertEqual(list(self.summary["latency"]["thread_pool"]), ["1xpool"])

    def test_fell_behind_list_and_boundary(self):
        self.assertEqual([(f["model"], f["shape"], f["q"]) for f in self.summary["fell_behind"]],
                         [("moodycamel", "4x4", 64)])
        for b in self.data["benchmarks"]:
            if b["name"] == name("threads_queue", 1, 1, 64):
                b["latency_achieved_per_s"] = b["latency_rate_per_s"] * 0.9  # on schedule, just
            if b["name"] == name("threads_queue", 1, 1, 1):
                b["latency_achieved_per_s"] = b["latency_rate_per_s"] * 0.899
        summary = summarize(self.data)
        self.assertEqual([(f["model"], f["shape"], f["q"]) for f in summary["fell_behind"]],
                         [("threads_queue", "1x1", 1), ("moodycamel", "4x4", 64)])
        self.assertEqual(summary["checks"]["on_schedule"], {"held": False, "cells": 48, "behind": 2, "unknown": 0})

    def test_without_achieved_rate_fell_behind_is_unknown(self):
        for b in self.data["benchmarks"]:
            b.pop("latency_achieved_per_s", None)
        summary = summarize(self.data)
        self.assertEqual(summary["fell_behind"], [])
        self.assertIsNone(summary["latency"]["moodycamel"]["4x4"]["fell_behind"])
        self.assertEqual(summary["checks"]["on_schedule"], {"held": None, "cells": 0, "behind": 0, "unknown": 48})
        self.assertIn("| latency runs on schedule | achieved ≥ 0.9× the offered rate | no cell recorded "
                      "latency_achieved_per_s | – not computed |", "\n".join(pc._checks_table(summary)))

    def test_with_work(self):
        work = {w["model"]: w for w in self.summary["with_work"]}
        self.assertEqual(set(work), {"event_loop", "fibers", "spsc_lockfree", "thread_pool"})
        self.assertAlmostEqual(work["event_loop"]["vs_no_work"], 900e3 / 12e6)
        self.assertAlmostEqual(work["event_loop"]["work_cpus"], 0.9)
        self.assertAlmostEqual(work["thread_pool"]["vs_no_work"], 800e3 / 10e6)
        self.assertEqual((work["thread_pool"]["shape"], work["thread_pool"]["workers"]), ("1xpool", 2))

    def test_workers_compare(self):
        compare = {(w["model"], w["shape"], w["q"]): w for w in self.summary["workers_compare"]}
        self.assertEqual({m for m, _, _ in compare}, {"fibers_mt", "thread_pool"})
        w = compare["fibers_mt", "1x1", 1024]
        self.assertEqual(w["msgs_per_s"], {"1": 64e6, "2": 32e6})
        self.assertAlmostEqual(w["ratio"], 0.5)
        self.assertAlmostEqual(compare["thread_pool", "1xpool", 64]["ratio"], 2.0)

    def test_checks_hold_without_errors(self):
        data = drop(pc_results(), "threads_queue/p:4/c:4/q:1024")
        self.assertEqual(summarize(data)["checks"]["verified"], {"held": True, "cells": 48, "errors": 0})

    def test_json_round_trip(self):
        self.assertEqual(json.loads(json.dumps(self.summary)), self.summary)


class ConclusionsTest(unittest.TestCase):
    def setUp(self):
        self.summary = summarize(pc_results())
        self.text = "\n".join(pc.conclusions(self.summary))

    def test_conclusions_leave_what_a_table_says_to_the_table(self):
        for table_says in ("Fastest model at", "p99 latency (of the runs on schedule)", "fell behind",
                           "With 1 µs of work per message", "with 2 workers against 1"):
            self.assertNotIn(table_says, self.text)

    def test_reference_sentence(self):
        self.assertIn("thread_pool's parallel_pipeline (one serial input stage feeds the pool's threads; P and C are "
                      "not its own) with 2 workers reaches 16M/s at Q=1, 10M/s at Q=64 and 10M/s at Q=1024.", self.text)

    def test_spsc_sentence(self):
        self.assertIn("Against the lock-free SPSC limit at 1x1, Q=64 (spsc_lockfree, 16M/s): fibers 1.50×; fibers_mt "
                      "1.25×; event_loop 0.75×; thread_pool 0.62× (1 × pool); threads_queue 0.25×; moodycamel 0.19×. "
                      "fibers and fibers_mt beat the spinning baseline (its two spinning threads kept 2.00 CPUs busy "
                      "there: it is a limit only where it has two cores to itself).", self.text)

    def test_q_sentence(self):
        self.assertIn("Going from Q=1 to Q=1024 multiplies messages per second by (range over the shapes; how much a "
                      "hand-off per message costs each model): event_loop 5.00×; fibers 15×; fibers_mt 32×; "
                      "thread_pool 0.62× (at 1xpool only); threads_queue 2.00× (Q=1 → 64 at 4x4); moodycamel 4.00×;", self.text)

    def test_cpu_sentences(self):
        self.assertIn("Process CPU above wall time (≥ 1.2 CPUs busy in some cell at work_ns 0; threads that spin or "
                      "wake each other, which the rates above show whether it buys): threads_queue 1.50 CPUs "
                      "(most at 1x1, Q=1); spsc_lockfree 2.00 CPUs (most at 1x1, Q=1).", self.text)
        self.assertIn("CPU per message at work_ns 0 ranges from 31.2 ns (fibers_mt, 1x1, Q=1024) to 2 µs "
                      "(moodycamel, 4x4, Q=1), 64× apart.", self.text)

    def test_backpressure_sentence(self):
        self.assertIn("Producers' time blocked on a full buffer at work_ns 0, Q=1 → Q=1024 (range over the shapes): "
                      "event_loop 90% → 20%; fibers 90% → 20%; fibers_mt 90% → 20%; thread_pool 0% → 0%; "
                      "threads_queue 90% → 20%;", self.text)

    def test_checks_table(self):
        table = "\n".join(pc._checks_table(summarize(pc_results())))
        self.assertIn("| every cell verified | M messages received once each, checksum equal to the reference | 1 of "
                      "49 cells failed (under Errors, left out of every table and plot) | ✗ did not hold |", table)
        self.assertIn("| latency runs on schedule | achieved ≥ 0.9× the offered rate | 1 of 48 fell behind (⚠ above) "
                      "| ✗ did not hold |", table)
        data = drop(drop(pc_results(), "threads_queue/p:4/c:4/q:1024"), "moodycamel/p:4/c:4/q:64")
        table = "\n".join(pc._checks_table(summarize(data)))
        self.assertIn("| all 47 cells | ✓ held |", table)
        self.assertIn("| achieved ≥ 0.9× the offered rate | all 47 cells | ✓ held |", table)
        self.assertNotIn("Check,", self.text)

    def test_no_valid_cell_no_conclusions(self):
        data = pc_results()
        data["benchmarks"] = [b for b in data["benchmarks"] if b.get("error_occurred")]
        summary = summarize(data)
        self.assertEqual(pc.conclusions(summary), [])
        self.assertEqual(pc.plot(summary, Path(tempfile.mkdtemp())), [])
        text = pc.report(summary, [])
        self.assertIn("result differs from the reference: got count 999", text)
        self.assertNotIn("| P×C |", text)


class OutputTest(ReportOutput, unittest.TestCase):
    """Plots and the report section through report.generate, as scripts/plot runs it."""

    results = staticmethod(pc_results)

    def test_plots_written(self):
        self.assert_plots_written((pc.PLOT_RATE, pc.PLOT_LATENCY, pc.PLOT_CPU))

    def test_plot_contents(self):
        self.assert_labels(pc.PLOT_RATE, ("P×C = 1×1 (1 producer, 1 consumer)", "P×C = 4×4 (4 producers, 4 consumers)",
                                          "fibers_mt (2 workers)", "spsc_lockfree, baseline (1x1 only)",
                                          "thread_pool (2 workers) [parallel_pipeline: P and C not its own]"))
        self.assert_labels(pc.PLOT_LATENCY, ("P×C = 4×4, Q=64", "p99.9", "not run", "hollow markers: mostly backlog)"))
        self.assert_labels(pc.PLOT_CPU, ("Q=1024", "P×C = 1×pool", "every core (2)", "one core"))

    def test_summary_json(self):
        summary = json.loads((self.dir / "summary.json").read_text())["workloads"]["producer_consumer"]
        self.assertEqual(summary["msgs_per_s"]["fibers"]["4x4"]["64"], 24e6)
        self.assertAlmostEqual(summary["vs_spsc"]["fibers"], 1.5)

    def test_report_section(self):
        for expected in ("- **Which hand-off is fastest?** Messages per second at Q=64, work_ns 0: 1x1: ",
                         "## producer_consumer: P producers, C consumers, a buffer of Q",
                         "Buffers as built: fibers holds 63 at Q=64, 1023 at Q=1024; fibers_mt holds 63 at Q=64, "
                         "1023 at Q=1024.", "calibrated at 4.2 ns per iteration",
                         "| 1x1 | event_loop | 1 | **3M/s** | 12M/s | 15M/s | 5.00× |",
                         "| 1x1 | fibers_mt | 2 | 1M/s | 20M/s | **32M/s** | 32× |",
                         "| 4x4 | threads_queue | 1 | 1M/s | 2M/s | error | 2.00× |",
                         "| 1xpool | thread_pool | 2 | 16M/s | 10M/s | 10M/s | 0.62× |",
                         "| spsc_lockfree (the limit, msgs/s) | 1 | 4M/s | 16M/s | 16M/s |",
                         "| fibers | 1 | 0.50× | 1.50× | 1.88× |",
                         "| 4x4 | moodycamel | 1 | 750k/s | 375k/s ⚠ 0.50× | 6.67 µs | 33.3 µs | 66.7 µs | 133 µs | 200 µs |",
                         "| 1x1 | spsc_lockfree | 1 | 2.00 · 500 ns · 90% | 2.00 · 125 ns · 50% | 2.00 · 125 ns · 20% |",
                         "| moodycamel | 4x4 | 64 | 0 | 1 | 0.50× |",
                         "| 1000 | 1x1 | 64 | event_loop | 1 | 900k/s | 0.07× | 0.90 | 1.00 | 50% | 111 µs |",
                         "| fibers_mt | 0 | 1x1 | 1024 | 1: 64M/s, 2: 32M/s | 0.50× |",
                         "### Errors", "`producer_consumer/threads_queue/p:4/c:4/q:1024/work_ns:0/workers:1/"
                         "iterations:1/process_time/real_time`: result differs from the reference",
                         "### Conclusions"):
            self.assertIn(expected, self.report)


if __name__ == "__main__":
    unittest.main()
