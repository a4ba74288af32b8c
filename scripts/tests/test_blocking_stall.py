import json
import tempfile
import unittest
from pathlib import Path

from synthetic import ReportOutput, error_entry

import results as res
from workloads import blocking_stall as bs

WORK = (1, 10, 100, 1000, 10000, 100000)
# Fixed cost each offload adds to the heavy request's p50, by kind (inline's own
# overhead included): offload cost = offload's minus inline's.
HEAVY_OVERHEAD = {"cpu": {"inline": 1, "threads": 12, "processes": 55},
                  "sleep": {"inline": 59, "threads": 71, "processes": 119}}


def name(model, kind, offload, work, rate, workers):
    return (f"blocking_stall/{model}/kind:{kind}/offload:{offload}/work_us:{work}/rate:{rate}"
            f"/workers:{workers}/process_time/real_time")


def stall_entry(model, kind, offload, work, light_p99, rate=100, workers=1, **counters):
    n = name(model, kind, offload, work, rate, workers)
    heavy_p50 = work + HEAVY_OVERHEAD[kind][offload]
    heavy_every = max(2000, 4 * work)
    return {"name": n, "run_name": n, "run_type": "iteration", "repetitions": 1, "repetition_index": 0,
            "iterations": 1, "real_time": 1.0, "cpu_time": 0.5, "time_unit": "s",
            "light_p50_us": light_p99 / 2, "light_p90_us": light_p99 * 0.8, "light_p99_us": light_p99,
            "light_p999_us": light_p99 * 1.5, "light_max_us": light_p99 * 2,
            "heavy_p50_us": heavy_p50, "heavy_p99_us": heavy_p50 * 2, "lag_p99_us": light_p99,
            "light_per_s": rate, "heavy_per_s": 1e6 / heavy_every, "heavy_every_us": heavy_every,
            "scheduled": 1000, "completed": 1000, "failed": 0, "workers": workers, **counters}


def sweep(model, kind, offload, p99s, **kw):
    return [stall_entry(model, kind, offload, w, v, **kw) for w, v in zip(WORK, p99s)]


def stall_results():
    """event_loop: every mode, both kinds, two rates; fibers: kind:cpu, no processes;
    thread_pool: one failed run and one run that lost requests. The expected
    numbers in the tests below follow from these."""
    benchmarks = (
        # kind:cpu, rate 100. threads wins from 100 on; processes wins at 10, loses
        # at 100, then wins from 1000 on.
        sweep("event_loop", "cpu", "inline", (5, 15, 110, 1100, 11000, 110000))
        + sweep("event_loop", "cpu", "threads", (20, 25, 30, 40, 50, 60))
        + sweep("event_loop", "cpu", "processes", (60, 8, 200, 80, 90, 100))
        # A busier rate where threads wins everywhere: break-even uses the lowest rate.
        + sweep("event_loop", "cpu", "inline", (500,) * 6, rate=1000)
        + sweep("event_loop", "cpu", "threads", (100,) * 6, rate=1000)
        # kind:sleep. threads wins from 100; processes wins at 1 only, so it never pays.
        + sweep("event_loop", "sleep", "inline", (60, 70, 160, 1100, 10100, 100100))
        + sweep("event_loop", "sleep", "threads", (70, 75, 80, 85, 90, 95))
        + sweep("event_loop", "sleep", "processes", (50, 200, 300, 2000, 20000, 200000))
        # fibers: the stall shows too little at 1 ms (900 < 0.95 x the predicted 960); no processes runs.
        + sweep("fibers", "cpu", "inline", (5, 15, 110, 900, 11000, 110000))
        + sweep("fibers", "cpu", "threads", (4, 14, 100, 800, 900, 1000))
        + [stall_entry("thread_pool", "sleep", "inline", 1000, 300, workers=2),
           stall_entry("thread_pool", "sleep", "threads", 1000, 200, workers=2,
                       scheduled=100, completed=97, failed=1),
           error_entry(name("thread_pool", "sleep", "processes", 1000, 100, 2),
                       "worker process died: request failed")])
    return {
        "command": ["scripts/bench", "--quick"],
        "context": {"date": "2025-01-01T00:00:00", "cpu_model": "Test CPU", "cores": "2",
                    "calib_thread_rtt_us": "4", "calib_thread_rtt_cross_core_us": "20",
                    "calib_pipe_rtt_us": "10", "calib_pipe_rtt_cross_core_us": "30",
                    "calib_thread_pool_rtt_us": "10", "calib_process_pool_rtt_us": "50"},
        "runs": [], "peers": {}, "benchmarks": benchmarks,
    }


def summarize(data):
    records = [r for r in res.reduce_runs(data["benchmarks"]) if r["workload"] == bs.NAME]
    return bs.summarize(records, data)


class BreakEvenTest(unittest.TestCase):
    def setUp(self):
        self.summary = summarize(stall_results())

    def test_offload_keeps_winning_from_break_even(self):
        self.assertEqual(self.summary["break_even_us"]["event_loop"]["cpu"]["threads"], 100)
        self.assertEqual(self.summary["break_even_us"]["event_loop"]["sleep"]["threads"], 100)

    def test_a_win_that_does_not_last_is_not_the_break_even(self):
        found = self.summary["break_even"]["event_loop"]["cpu"]["processes"]
        self.assertEqual(found["from_us"], 1000)
        self.assertEqual(found["earlier_wins_us"], [10])

    def test_never_pays_off_is_null(self):
        found = self.summary["break_even"]["event_loop"]["sleep"]["processes"]
        self.assertIsNone(self.summary["break_even_us"]["event_loop"]["sleep"]["processes"])
        self.assertEqual(found["status"], "never")
        self.assertEqual(found["earlier_wins_us"], [])  # 50 against 60 µs is inside the margin

    def test_lowest_rate_used(self):
        found = self.summary["break_even"]["event_loop"]["cpu"]["threads"]
        self.assertEqual(found["rate"], 100)
        # At rate 1000 threads wins everywhere; both rates are kept in the series.
        self.assertEqual(set(self.summary["series"]["event_loop"]["cpu"]["threads"]), {"100", "1000"})
        self.assertEqual(self.summary["rates"], [100, 1000])

    def test_missing_offload_mode_is_null(self):
        self.assertIsNone(self.summary["break_even_us"]["fibers"]["cpu"]["processes"])
        self.assertEqual(self.summary["break_even"]["fibers"]["cpu"]["processes"]["status"], "missing")
        # 7 to 20% lower p99 up to 1 ms is within the margin; from 10 ms it is far lower.
        self.assertEqual(self.summary["break_even_us"]["fibers"]["cpu"]["threads"], 10000)
        self.assertNotIn("sleep", self.summary["break_even_us"]["fibers"])

    def test_a_win_must_clear_the_margin(self):
        def found(ratio):
            p99 = {"1": 100, "10": 1000}
            by_offload = {"inline": {"1": {"1": {w: {"light_p99_us": v} for w, v in p99.items()}}},
                          "threads": {"1": {"1": {w: {"light_p99_us": v * ratio} for w, v in p99.items()}}}}
            return bs._break_even(by_offload, "threads")["from_us"]
        self.assertEqual(found(0.8), 1)
        self.assertIsNone(found(0.81))

    def test_sentence_names_a_stall_far_above_the_nominal_work(self):
        def phrase(stall_us):
            by_offload = {"inline": {"1": {"1": {"3": {"light_p99_us": 200, "stall_p50_us": stall_us}}}},
                          "threads": {"1": {"1": {"3": {"light_p99_us": 100}}}}}
            found = bs._break_even(by_offload, "threads")
            found["smallest_work_us"] = 1  # so the phrase is "from about", not "already at"
            return bs._pays_off_phrase(found)
        self.assertIn("held its thread for 77", phrase(77))
        self.assertNotIn("held its thread", phrase(5))

    def test_tie_is_not_a_win(self):
        by_offload = {"inline": {"1": {"1": {"1": {"light_p99_us": 5}, "10": {"light_p99_us": 50}}}},
                      "threads": {"1": {"1": {"1": {"light_p99_us": 4}, "10": {"light_p99_us": 50}}}}}
        found = bs._break_even(by_offload, "threads")
        self.assertIsNone(found["from_us"])
        self.assertEqual(found["earlier_wins_us"], [1])


class SummaryTest(unittest.TestCase):
    def setUp(self):
        self.data = stall_results()
        self.summary = summarize(self.data)

    def test_series_layout(self):
        point = self.summary["series"]["event_loop"]["sleep"]["threads"]["100"]["1"]["100000"]
        self.assertEqual(point["light_p99_us"], 95)
        self.assertEqual(point["light_p999_us"], 95 * 1.5)
        self.assertEqual(point["heavy_p50_us"], 100000 + 71)
        self.assertEqual(list(self.summary["series"]), ["event_loop", "fibers", "thread_pool"])
        self.assertEqual(list(self.summary["series"]["event_loop"]["cpu"]), ["inline", "threads", "processes"])
        self.assertEqual(list(self.summary["series"]["event_loop"]["cpu"]["inline"]["100"]["1"]),
                         [str(w) for w in WORK])
        self.assertEqual(self.summary["work_sizes"], list(WORK))

    def test_offload_cost_at_smallest_work(self):
        self.assertEqual(self.summary["offload_cost_us"]["event_loop"], {"threads": 11, "processes": 54})
        sleep = self.summary["offload_cost"]["event_loop"]["sleep"]
        self.assertEqual((sleep["threads"]["cost_us"], sleep["processes"]["cost_us"]), (12, 60))
        self.assertEqual(sleep["threads"]["work_us"], 1)

    def test_offload_cost_uses_smallest_common_work(self):
        self.data["benchmarks"] = [b for b in self.data["benchmarks"]
                                   if not b["name"].startswith("blocking_stall/event_loop/kind:cpu/offload:inline"
                                                               "/work_us:1/")]
        summary = summarize(self.data)
        self.assertEqual(summary["offload_cost"]["event_loop"]["cpu"]["threads"]["work_us"], 10)
        self.assertEqual(summary["offload_cost_us"]["event_loop"]["threads"], 11)

    def test_offload_cost_missing_is_null(self):
        self.assertEqual(self.summary["offload_cost_us"]["fibers"], {"threads": 11, "processes": None})
        # thread_pool ran kind:sleep only: no kind:cpu headline.
        self.assertEqual(self.summary["offload_cost_us"]["thread_pool"], {"threads": None, "processes": None})
        self.assertEqual(self.summary["offload_cost"]["thread_pool"]["sleep"]["threads"]["cost_us"], 12)

    def test_errors_listed_not_measured(self):
        self.assertEqual([e["message"] for e in self.summary["errors"]], ["worker process died: request failed"])
        self.assertNotIn("processes", self.summary["series"]["thread_pool"]["sleep"])

    def test_count_mismatch_reported(self):
        [mismatch] = self.summary["count_mismatches"]
        self.assertIn("offload:threads", mismatch["name"])
        self.assertIn("2 requests unaccounted for", mismatch["message"])

    def test_aggregates_not_count_checked_but_aggregate_only_runs_are(self):
        first = self.data["benchmarks"][0]
        stddev = dict(first, name=first["name"] + "_stddev", run_type="aggregate", aggregate_name="stddev",
                      scheduled=0.4, completed=3, failed=0)
        self.data["benchmarks"].append(stddev)
        self.assertEqual(len(summarize(self.data)["count_mismatches"]), 1)
        median = dict(first, name=first["name"] + "_median", run_type="aggregate", aggregate_name="median",
                      scheduled=10, completed=8, failed=0)
        self.data["benchmarks"] = [median]
        [mismatch] = summarize(self.data)["count_mismatches"]
        self.assertIn("2 requests unaccounted for", mismatch["message"])

    def test_missing_counters_reported(self):
        self.assertEqual(bs._count_problem({"scheduled": 1, "completed": 1}), "no failed counter")
        self.assertIn("1 more ended than were scheduled",
                      bs._count_problem({"scheduled": 1, "completed": 2, "failed": 0}))
        self.assertIsNone(bs._count_problem({"scheduled": 3.0, "completed": 2.0, "failed": 1.0}))

    def test_calibration_from_context(self):
        self.assertEqual(self.summary["calibration"],
                         {"thread_rtt_us": 4, "thread_rtt_cross_core_us": 20, "pipe_rtt_us": 10,
                          "pipe_rtt_cross_core_us": 30, "thread_pool_rtt_us": 10, "process_pool_rtt_us": 50})
        self.assertEqual(list(self.summary["calibration"]), list(bs.CALIBRATION_LABELS))

    def test_absent_calibration_is_null(self):
        for key in ("calib_thread_rtt_cross_core_us", "calib_pipe_rtt_cross_core_us", "calib_process_pool_rtt_us"):
            del self.data["context"][key]
        calibration = summarize(self.data)["calibration"]
        self.assertEqual([name for name, value in calibration.items() if value is None],
                         ["thread_rtt_cross_core_us", "pipe_rtt_cross_core_us", "process_pool_rtt_us"])
        self.assertEqual(calibration["thread_pool_rtt_us"], 10)

    def test_heavy_every_copied_into_series(self):
        point = self.summary["series"]["event_loop"]["cpu"]["inline"]["100"]["1"]["10000"]
        self.assertEqual(point["heavy_every_us"], 40000)

    def test_json_round_trip(self):
        # String keys only: JSON would turn numeric keys into strings silently.
        self.assertEqual(json.loads(json.dumps(self.summary)), self.summary)


class ChecksTest(unittest.TestCase):
    def setUp(self):
        self.checks = summarize(stall_results())["checks"]

    def test_stall_visible(self):
        cpu = self.checks["stall_visible"]["event_loop"]["cpu"]
        self.assertTrue(cpu["held"])
        self.assertEqual(cpu["points"], 3)
        sleep = self.checks["stall_visible"]["event_loop"]["sleep"]
        # Closest to its prediction: 100100 against 100000 - 0.01 x 400000 = 96000.
        self.assertEqual((sleep["worst_work_us"], sleep["worst_p99_us"], sleep["worst_predicted_p99_us"]),
                         (100000, 100100, 96000))
        fibers = self.checks["stall_visible"]["fibers"]["cpu"]
        self.assertFalse(fibers["held"])
        self.assertEqual((fibers["worst_work_us"], fibers["worst_p99_us"], fibers["worst_heavy_every_us"]),
                         (1000, 900, 4000))
        self.assertAlmostEqual(fibers["worst_p99_vs_predicted"], 900 / 960)
        self.assertAlmostEqual(fibers["worst_p99_vs_work"], 0.9)
        self.assertEqual((fibers["worst_max_work_us"], fibers["worst_max_us"]), (1000, 1800))

    @staticmethod
    def stall_check(p99, most=20000, every=40000, work=10000):
        """The stall check on one inline point at work (predicted p99 9600 by default)
        beside a small one that it must ignore."""
        point = {"light_p99_us": p99, "light_max_us": most, "heavy_every_us": every}
        small = {"light_p99_us": 1, "light_max_us": 1, "heavy_every_us": 2000}
        return bs._stall_visible({"inline": {"1000": {"1": {"10": small, str(work): point}}}})

    def test_stall_p99_against_prediction(self):
        # 0.95 x (10000 - 0.01 x 40000) = 9120, below the work itself.
        self.assertTrue(self.stall_check(9121)["held"])
        self.assertFalse(self.stall_check(9119)["held"])
        self.assertEqual(self.stall_check(9121)["points"], 1)

    def test_stall_max_must_reach_the_work_less_one_light_interval(self):
        # At 1000/s the first light request after a stall starts arrives within 1 ms.
        self.assertTrue(self.stall_check(9600, most=9000)["held"])
        check = self.stall_check(9600, most=8999)
        self.assertFalse(check["held"])
        self.assertAlmostEqual(check["worst_max_vs_work"], 0.8999)
        self.assertEqual(check["light_gap_us"], 1000)

    def test_stall_check_skips_the_thread_pool(self):
        # Its inline call holds one worker of several: no stall of every request to see.
        self.assertNotIn("thread_pool", summarize(stall_results())["checks"]["stall_visible"])

    def test_stall_measured_by_the_inline_call(self):
        # The call held its thread for 9300 us, not the nominal 10000: predicted p99
        # 0.95 x (9300 - 400) = 8455, and the max need only reach 9300 - 1000.
        point = {"light_p99_us": 8460, "light_max_us": 8400, "heavy_every_us": 40000, "stall_p50_us": 9300}
        check = bs._stall_visible({"inline": {"1000": {"1": {"10000": point}}}})
        self.assertTrue(check["held"])
        self.assertTrue(check["stall_measured"])
        self.assertEqual(check["worst_stall_us"], 9300)
        self.assertAlmostEqual(check["stall_vs_work"][0], 0.93)
        self.assertFalse(self.stall_check(8460, most=8400)["held"])  # against the nominal work it fails
        point["light_p99_us"] = 8450
        self.assertFalse(bs._stall_visible({"inline": {"1000": {"1": {"10000": point}}}})["held"])

    def test_stall_prediction_floors_at_zero(self):
        check = self.stall_check(1, most=1000, every=200000, work=1000)
        self.assertTrue(check["held"])
        self.assertEqual(check["worst_predicted_p99_us"], 0)
        self.assertIsNone(check["worst_p99_vs_predicted"])

    def test_stall_without_heavy_interval_not_computed(self):
        by_offload = {"inline": {"100": {"1": {"10000": {"light_p99_us": 9600, "light_max_us": 20000}}}}}
        check = bs._stall_visible(by_offload)
        self.assertIsNone(check["held"])
        self.assertIn("heavy_every_us", check["reason"])
        data = stall_results()
        for b in data["benchmarks"]:
            b.pop("heavy_every_us", None)
        summary = summarize(data)
        self.assertIsNone(summary["checks"]["stall_visible"]["event_loop"]["cpu"]["held"])
        self.assertIn("Check, inline stall visible (event_loop, kind:cpu): not computed; no heavy_every_us "
                      "counter in the data.", "\n".join(bs.conclusions(summary)))

    def test_sleep_offload_bounded(self):
        check = self.checks["sleep_offload_bounded"]["event_loop"]
        self.assertTrue(check["held"])
        self.assertEqual(check["limit_us"], 1000)  # max(1 ms, 2 x 4 us)
        self.assertEqual(check["worst_p99_us"], 95)
        self.assertTrue(check["covers_sweep"])
        partial = self.checks["sleep_offload_bounded"]["thread_pool"]
        self.assertFalse(partial["covers_sweep"])

    def test_sleep_limit_follows_a_slow_round_trip(self):
        data = stall_results()
        data["context"]["calib_thread_rtt_cross_core_us"] = "40"  # 2 x 40 < 1000: the 1 ms floor holds
        self.assertEqual(summarize(data)["checks"]["sleep_offload_bounded"]["event_loop"]["limit_us"], 1000)
        data["context"]["calib_thread_rtt_cross_core_us"] = "600"
        check = summarize(data)["checks"]["sleep_offload_bounded"]["event_loop"]
        self.assertEqual(check["limit_us"], 1200)
        del data["context"]["calib_thread_rtt_cross_core_us"]  # one core: the unpinned one counts
        data["context"]["calib_thread_rtt_us"] = "700"
        self.assertEqual(summarize(data)["checks"]["sleep_offload_bounded"]["event_loop"]["limit_us"], 1400)

    def test_offload_cost_against_round_trips(self):
        threads = self.checks["offload_cost_vs_rtt"]["event_loop"]["threads"]
        self.assertTrue(threads["held"])
        self.assertEqual(threads["reference"], "thread_rtt_cross_core_us")
        self.assertAlmostEqual(threads["ratio"], 11 / 20)
        self.assertAlmostEqual(threads["same_core_ratio"], 11 / 4)
        self.assertEqual((threads["pool"], threads["pool_us"]), ("thread_pool_rtt_us", 10))
        self.assertAlmostEqual(threads["pool_ratio"], 1.1)
        processes = self.checks["offload_cost_vs_rtt"]["event_loop"]["processes"]
        self.assertFalse(processes["held"])
        self.assertEqual(processes["reference"], "pipe_rtt_cross_core_us")
        self.assertAlmostEqual(processes["ratio"], 1.8)
        self.assertAlmostEqual(processes["pool_ratio"], 54 / 50)
        self.assertNotIn("processes", self.checks["offload_cost_vs_rtt"]["fibers"])

    CALIBRATION = {"thread_rtt_us": 4, "thread_rtt_cross_core_us": 20, "thread_pool_rtt_us": 10}

    def test_offload_cost_below_the_same_core_round_trip_holds(self):
        # One-sided: far below the wake of another core (and even below the same-core round trip) is fine.
        check = bs._cost_vs_rtt(3, "threads", self.CALIBRATION)
        self.assertTrue(check["held"])
        self.assertAlmostEqual(check["ratio"], 0.15)
        self.assertIn("below both the unpinned round trip (4 µs) and the cross-core one",
                      bs._cost_check_sentence("event_loop", "threads", check))

    def test_offload_cost_above_tolerance_fails(self):
        self.assertTrue(bs._cost_vs_rtt(30, "threads", self.CALIBRATION)["held"])  # 1.5 x 20
        check = bs._cost_vs_rtt(32, "threads", self.CALIBRATION)  # 1.6 x 20
        self.assertFalse(check["held"])
        self.assertAlmostEqual(check["ratio"], 1.6)

    def test_offload_cost_falls_back_to_the_unpinned_round_trip(self):
        check = bs._cost_vs_rtt(7, "threads", dict(self.CALIBRATION, thread_rtt_cross_core_us=None))
        self.assertEqual((check["reference"], check["reference_us"]), ("thread_rtt_us", 4))
        self.assertFalse(check["held"])  # 1.75 x 4
        self.assertIn("7 µs is 1.75× the thread round trip (4 µs), which stands in for the unmeasured "
                      "cross-core one; and 0.70× the thread pool round trip (10 µs).",
                      bs._cost_check_sentence("event_loop", "threads", check))
        data = stall_results()
        del data["context"]["calib_pipe_rtt_cross_core_us"]
        processes = summarize(data)["checks"]["offload_cost_vs_rtt"]["event_loop"]["processes"]
        self.assertEqual((processes["reference"], processes["reference_us"]), ("pipe_rtt_us", 10))

    def test_offload_cost_without_round_trips(self):
        self.assertIsNone(bs._cost_vs_rtt(7, "processes", self.CALIBRATION))
        self.assertIsNone(bs._cost_vs_rtt(None, "threads", self.CALIBRATION))
        check = bs._cost_vs_rtt(7, "threads", {"thread_rtt_cross_core_us": 20})
        self.assertEqual((check["same_core_us"], check["pool_ratio"]), (None, None))
        self.assertTrue(bs._cost_check_sentence("event_loop", "threads", check).endswith("(20 µs)."))


class ConclusionsTest(unittest.TestCase):
    def setUp(self):
        self.text = "\n".join(bs.conclusions(summarize(stall_results())))

    def test_break_even_sentences(self):
        self.assertIn("On this machine, offloading CPU work from the event loop to a thread pool pays off "
                      "from about 100 µs of work; to a process pool it pays off from about 1 ms of work "
                      "(it also won at 10 µs, but not at every size above).", self.text)
        self.assertIn("offloading a blocking call from the event loop to a thread pool pays off from about "
                      "100 µs of work; to a process pool it never pays off up to 100 ms", self.text)
        self.assertIn("offloading CPU work from fibers on one thread to a thread pool pays off from about "
                      "10 ms of work (it also won at 1 µs, but not at every size above).", self.text)

    def test_cost_sentences_beside_calibration(self):
        self.assertIn("One offload from the event loop adds 11 µs to threads and 54 µs to processes to a "
                      "heavy request's p50 (kind:cpu, 1 µs of work).", self.text)
        self.assertIn("One offload from fibers on one thread adds 11 µs to threads", self.text)
        self.assertEqual(self.text.count("Calibrated on this machine for comparison: thread round trip 4 µs, "
                                         "thread round trip across cores 20 µs, pipe round trip 10 µs, "
                                         "pipe round trip across cores 30 µs, thread pool round trip 10 µs "
                                         "and process pool round trip 50 µs."), 1)

    def test_check_sentences(self):
        rule = ("light p99 ≥ 0.95 × the predicted W − 0.01·I, as a share W/I of light requests meets a stall "
                "of W every I, and light max ≥ W less one light interval, 10 ms; W is work_us; at work_us ≥ 1 ms)")
        self.assertIn(f"Check, inline stall visible (event_loop, kind:cpu, {rule}: held", self.text)
        self.assertIn(f"Check, inline stall visible (fibers, kind:cpu, {rule}: did not hold; lowest light p99 "
                      f"900 µs at 1 ms of work, 0.90× the work and 0.94× the predicted 960 µs; lowest light max "
                      f"1.8 ms at 1 ms of work, 1.80× the stall.", self.text)
        self.assertIn("Check, threads offload bounds kind:sleep (event_loop, light p99 < 1 ms up to 100 ms): "
                      "held; worst light p99 95 µs at 100 ms of work.", self.text)
        self.assertIn("(thread_pool with 2 workers, light p99 < 1 ms up to 1 ms only (the check asks for 100 ms)): "
                      "held", self.text)
        self.assertNotIn("Check, inline stall visible (thread_pool", self.text)
        self.assertIn("Check, threads offload cost ≤ 1.5× the round trip to a sleeping core (event_loop): held; "
                      "11 µs is 0.55× the thread round trip across cores (20 µs), between the unpinned round trip "
                      "(4 µs) and the cross-core one; and 1.10× the thread pool round trip (10 µs).", self.text)
        self.assertIn("Check, processes offload cost ≤ 1.5× the round trip to a sleeping core (event_loop): "
                      "did not hold; 54 µs is 1.80× the pipe round trip across cores (30 µs), above both the "
                      "unpinned round trip (10 µs) and the cross-core one; and 1.08× the process pool round trip "
                      "(50 µs).", self.text)
        self.assertNotIn("The processes offload from", self.text)

    def test_failed_requests_counted(self):
        self.assertIn("1 request failed across 1 run (thread_pool/sleep/threads)", self.text)

    def test_format_us(self):
        self.assertEqual([bs.format_us(v) for v in (3, 1000, 100000, 2.5e6, 0.5)],
                         ["3 µs", "1 ms", "100 ms", "2.5 s", "0.5 µs"])


class OutputTest(ReportOutput, unittest.TestCase):
    """Plots and the report section through report.generate, as scripts/plot runs it."""

    results = staticmethod(stall_results)

    def test_plots_written(self):
        stems = [f"blocking_stall_crossover_{m}_{k}" for m, k in
                 (("event_loop", "cpu"), ("event_loop", "sleep"), ("fibers", "cpu"), ("thread_pool", "sleep"))]
        stems += [f"blocking_stall_heavy_{m}" for m in ("event_loop", "fibers", "thread_pool")]
        self.assert_plots_written(stems)
        self.assertEqual(len(list((self.dir / "plots").iterdir())), 2 * len(stems))

    def test_crossover_has_reference_lines(self):
        svg = (self.dir / "plots" / "blocking_stall_crossover_event_loop_cpu.svg").read_text()
        for label in ("thread round trip across cores 20 µs", "pipe round trip across cores 30 µs",
                      "thread pool round trip 10 µs", "process pool round trip 50 µs",
                      "threads pays off from 100 µs (at 100/s)", "processes pays off from 1 ms"):
            self.assertIn(label, svg)
        # The unpinned round trips only stand in for absent cross-core ones.
        self.assertNotIn("thread round trip 4 µs", svg)
        self.assertNotIn("pipe round trip 10 µs", svg)

    def test_crossover_falls_back_to_unpinned_round_trips(self):
        data = stall_results()
        for key in ("calib_thread_rtt_cross_core_us", "calib_pipe_rtt_cross_core_us"):
            del data["context"][key]
        summary = summarize(data)
        summary["series"] = {"fibers": summary["series"]["fibers"]}  # one model is enough here
        plots = Path(tempfile.mkdtemp())
        bs.plot(summary, plots)
        svg = (plots / "blocking_stall_crossover_fibers_cpu.svg").read_text()
        for label in ("thread round trip 4 µs", "pipe round trip 10 µs", "thread pool round trip 10 µs"):
            self.assertIn(label, svg)
        self.assertNotIn("across cores", svg)

    def test_summary_json(self):
        summary = json.loads((self.dir / "summary.json").read_text())["workloads"]["blocking_stall"]
        self.assertEqual(summary["break_even_us"]["event_loop"]["cpu"], {"threads": 100, "processes": 1000})
        self.assertEqual(summary["offload_cost_us"]["event_loop"]["threads"], 11)

    def test_report_section(self):
        for expected in ("## blocking_stall", "| event_loop | cpu | 100/s | 1 | 100 µs | 1 ms | +11 µs | +54 µs |",
                         "| event_loop | sleep | 100/s | 1 | 100 µs | never (to 100 ms) | +12 µs | +60 µs |",
                         "| fibers | cpu | 100/s | 1 | 10 ms | – | +11 µs | – |",
                         "| event_loop | cpu | processes | 60 µs | 8 µs | 200 µs | 80 µs | 90 µs | 100 µs |",
                         "### Errors", "worker process died: request failed",
                         "2 requests unaccounted for", "### Conclusions"):
            self.assertIn(expected, self.report)
        self.assertNotIn("/tmp", self.report)

    def test_only_errors_gives_no_plots(self):
        data = stall_results()
        data["benchmarks"] = [b for b in data["benchmarks"] if b.get("error_occurred")]
        summary = summarize(data)
        self.assertEqual(bs.plot(summary, self.dir / "empty"), [])
        text = bs.report(summary, [])
        self.assertIn("worker process died", text)
        self.assertNotIn("### Conclusions", text)


if __name__ == "__main__":
    unittest.main()
