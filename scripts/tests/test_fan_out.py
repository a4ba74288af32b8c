import json
import math
import unittest

from synthetic import ReportOutput, error_entry

import results as res
from workloads import fan_out as fo

POOL, PER_REQUEST = fo.POOL, fo.PER_REQUEST


def name(series, n, k, delay, workers=1, group="settled", body=64, fail=0):
    model, _, how = series.partition(" ")
    return "/".join(["fan_out", model] + ([how] if how else [])
                    + [f"group:{group}", f"n:{n}", f"k:{k}", f"delay_us:{delay}", f"bytes:{body}", f"fail:{fail}",
                       f"workers:{workers}"])


def in_flight(series, n, k, workers):
    """What each model can hold, as the C++ side computes it: serial one, the pool one per worker."""
    most = {"serial": 1, POOL: workers}.get(series, math.inf)
    return min(k, n, most)


def fan_entry(series, n, k, delay, wall_ms, workers=1, group="settled", body=64, fail=0, **counters):
    """One cell: every request ok unless counters say otherwise; latency from the delay;
    1 µs of client CPU per request per ms of wall; 4 KiB per in-flight request."""
    full = name(series, n, k, delay, workers, group, body, fail) + "/iterations:1/repeats:1/process_time/real_time"
    limit = in_flight(series, n, k, workers)
    ideal_ms = math.ceil(n / min(k, n)) * delay / 1e3  # the workload's ideal, whatever the model holds
    base = delay + 100
    entry = {"name": full, "run_name": full, "run_type": "iteration", "repetitions": 1, "repetition_index": 0,
             "iterations": 1, "real_time": wall_ms, "cpu_time": n * 2e-3, "time_unit": "ms",
             "n": n, "k": k, "in_flight_limit": limit, "ideal_ms": ideal_ms,
             "own_ideal_ms": math.ceil(n / limit) * delay / 1e3, "requests_per_s": n / wall_ms * 1e3,
             "latency_p50_us": base, "latency_p90_us": base * 1.2, "latency_p99_us": base * 2,
             "latency_p999_us": base * 3, "latency_max_us": base * 5,
             "ok": n, "failed": 0, "timed_out": 0, "cancelled": 0, "peak_rss_bytes": 50 * 2 ** 20,
             "bytes_per_in_flight": 4096.0, "workers": workers}
    if delay:
        entry["ideal_ratio"] = wall_ms / ideal_ms
    entry.update(counters)
    return entry


def wrk_entry(k, rate, body=64):
    full = f"fan_out/wrk/k:{k}/delay_us:0/bytes:{body}/workers:1/iterations:1/repeats:1/process_time/real_time"
    return {"name": full, "run_name": full, "run_type": "iteration", "repetitions": 1, "repetition_index": 0,
            "iterations": 1, "real_time": 1000.0, "cpu_time": 1.0, "time_unit": "ms",
            "requests_per_s": rate, "latency_p50_us": 1e6 * k / rate, "latency_p99_us": 3e6 * k / rate, "k": k}


def skip(series, n, k, delay, workers, ideal_s):
    return {"name": name(series, n, k, delay, workers), "reason": f"ideal {ideal_s:g} s exceeds 2 s"}


PARALLEL = ("fibers_mt", POOL, PER_REQUEST)


def fan_results():
    """Two runs (--workers 1 then 2). The numbers the tests expect follow from these:
    at N=10000 K=100 delay 10 ms: event_loop 1.02x, fibers 1.06x, fibers_mt 1.2x with one
    worker and 1.03x with two, per_request 1.1x with one worker and a count mismatch with
    two, the pool and serial skipped. At delay 0: wrk 30k, 50k, 60k/s at K 16, 64, 128;
    event_loop 46k/s at K=64 (0.92x)."""
    b = []
    runs = [("event_loop", 1), ("fibers", 1), ("serial", 1)] + [(s, w) for s in PARALLEL for w in (1, 2)]
    wall_10ms = {("event_loop", 1): 1020, ("fibers", 1): 1060, ("fibers_mt", 1): 1200, ("fibers_mt", 2): 1030,
                 (PER_REQUEST, 1): 1100, (PER_REQUEST, 2): 1050}
    rate_k64 = {"event_loop": 46000, "fibers": 40000, "serial": 9000, "fibers_mt": 55000, POOL: 20000,
                PER_REQUEST: 15000}
    for series, w in runs:
        # delay 1 ms, N=1000: every series runs (the pool holds `workers`, serial one).
        for k in (10, 100):
            limit = in_flight(series, 1000, k, w)
            b.append(fan_entry(series, 1000, k, 1000, math.ceil(1000 / limit) * 1.1, w))
        # delay 10 ms, N=10000: K=100 and K=1000 where the ideal is at most 2 s.
        if (series, w) in wall_10ms:
            extra = {"ok": 9997} if (series, w) == (PER_REQUEST, 2) else {}
            b.append(fan_entry(series, 10000, 100, 10000, wall_10ms[series, w], w, **extra))
            b.append(fan_entry(series, 10000, 1000, 10000, 110, w, bytes_per_in_flight=2048.0 * w))
        # delay 0, N=10000.
        for k in (16, 64, 128):
            rate = rate_k64[series] * (k / 64) ** 0.1
            b.append(fan_entry(series, 10000, k, 0, 10000 / rate * 1e3, w))
    # Fail fast against settled at fail 0.01 (event_loop).
    b.append(fan_entry("event_loop", 1000, 10, 1000, 120, group="all", fail=0.01,
                       ok=40, failed=1, cancelled=959, cancel_us=850))
    b.append(fan_entry("event_loop", 1000, 10, 1000, 110, fail=0.01, ok=990, failed=10))
    b.append(error_entry(name("fibers", 1000, 100, 1000, group="all", fail=0.01) + "/process_time/real_time",
                         "server answered 503"))
    b += [wrk_entry(16, 30000), wrk_entry(64, 50000), wrk_entry(128, 60000)]

    run1_skips = [skip("serial", 10000, 100, 10000, 1, 100), skip(POOL, 10000, 100, 10000, 1, 100),
                  skip(POOL, 10000, 1000, 10000, 1, 100), skip("serial", 10000, 1000, 10000, 1, 100)]
    run2_skips = [skip(POOL, 10000, 100, 10000, 2, 50), skip(POOL, 10000, 1000, 10000, 2, 50)]
    server = "concbench-server --threads=1 on 127.0.0.1 (child process)"
    run1 = {"workers": "1", "fan_out_server": server, "fan_out_skipped": json.dumps(run1_skips)}
    run2 = {"workers": "2", "fan_out_server": server, "fan_out_skipped": json.dumps(run2_skips)}
    return {"command": ["scripts/bench"],
            "context": dict(run1, date="2025-01-01T00:00:00", cpu_model="Test CPU", cores="2", workers="1,2"),
            "runs": [run1, run2], "peers": {}, "benchmarks": b}


def summarize(data):
    records = [r for r in res.reduce_runs(data["benchmarks"]) if r["workload"] == fo.NAME]
    return fo.summarize(records, data)


def set_wall(data, series, workers, n, k, delay, wall_ms):
    """Changes one cell's wall time and the figures that follow from it."""
    for b in data["benchmarks"]:
        if b["name"].startswith(name(series, n, k, delay, workers) + "/"):
            b["real_time"] = wall_ms
            b["requests_per_s"] = n / wall_ms * 1e3
            if delay:
                b["ideal_ratio"] = wall_ms / b["ideal_ms"]
            return
    raise AssertionError("no such cell")


class SummaryTest(unittest.TestCase):
    def setUp(self):
        self.data = fan_results()
        self.summary = summarize(self.data)

    def test_series_and_workers(self):
        self.assertEqual(self.summary["series"], ["serial", "event_loop", "fibers", "fibers_mt", POOL, PER_REQUEST])
        self.assertEqual(self.summary["workers"],
                         {"serial": 1, "event_loop": 1, "fibers": 1, "fibers_mt": 2, POOL: 2, PER_REQUEST: 2})

    def test_thread_pool_split_by_its_pool_key(self):
        self.assertEqual(fo.parse(name(POOL, 1, 1, 0)), (POOL, fo.parse(name("serial", 1, 1, 0))[1]))
        self.assertEqual(fo.parse(name(PER_REQUEST, 1, 1, 0))[0], PER_REQUEST)
        # Google Benchmark's own threads:<count> is no series.
        self.assertEqual(fo.parse("fan_out/fibers/threads:2/n:1")[0], "fibers")

    def test_ideal_ratio_at_the_headline_cell_and_largest_workers(self):
        ratios = self.summary["ideal_ratio"]
        self.assertAlmostEqual(ratios["event_loop"], 1.02)
        self.assertAlmostEqual(ratios["fibers"], 1.06)
        self.assertAlmostEqual(ratios["fibers_mt"], 1.03)  # two workers, not one (1.2)
        self.assertEqual(self.summary["ideal_cell"]["fibers_mt"]["workers"], 2)
        self.assertEqual(self.summary["ideal_cell"]["event_loop"]["ideal_ms"], 1000)

    def test_skipped_cell_is_null_with_its_reason(self):
        self.assertIsNone(self.summary["ideal_ratio"][POOL])
        pool = self.summary["ideal_cell"][POOL]
        # The two-worker skip comes from the second run's context.
        self.assertEqual((pool["status"], pool["reason"]), ("skipped", "ideal 50 s exceeds 2 s"))
        self.assertEqual(self.summary["ideal_cell"]["serial"]["reason"], "ideal 100 s exceeds 2 s")

    def test_skipped_cells_from_every_run_once(self):
        self.data["runs"][0] = dict(self.data["runs"][0])  # the first run's list is also the context's
        skipped = summarize(self.data)["skipped"]
        self.assertEqual(len(skipped), 6)
        self.assertEqual(sum(s["series"] == POOL for s in skipped), 4)

    def test_malformed_skipped_list_is_a_note(self):
        for bad in ("[{\"name\": ", "{\"name\": \"x\"}", "[1, 2]"):
            self.data["context"]["fan_out_skipped"] = bad
            self.data["runs"][0]["fan_out_skipped"] = bad
            summary = summarize(self.data)
            [note] = summary["notes"]
            self.assertIn("context fan_out_skipped is unreadable", note)
            self.assertEqual([s["name"] for s in summary["skipped"]],
                             [name(POOL, 10000, 100, 10000, 2), name(POOL, 10000, 1000, 10000, 2)])
            self.assertIn("results.json: context fan_out_skipped is unreadable", fo.report(summary, []))

    def test_count_mismatch_flagged_and_never_presented(self):
        [mismatch] = self.summary["count_mismatches"]
        self.assertEqual(mismatch["name"], name(PER_REQUEST, 10000, 100, 10000, 2)
                         + "/iterations:1/repeats:1/process_time/real_time")
        self.assertIn("= 9997 ≠ n 10000 (3 requests unaccounted for)", mismatch["message"])
        cell = self.summary["ideal_cell"][PER_REQUEST]
        self.assertIsNone(cell["ratio"])  # not the one-worker 1.1x either
        self.assertEqual(cell["status"], "invalid")
        self.assertFalse(any(c["name"] == mismatch["name"] for c in self.summary["cells"][PER_REQUEST]))
        self.assertEqual(self.summary["checks"]["counts"], {"held": False, "cells": 59, "mismatches": 1})

    def test_count_problems(self):
        self.assertIsNone(fo._count_problem({"n": 10.0, "ok": 7.0, "failed": 1.0, "timed_out": 1.0,
                                             "cancelled": 1.0}, {}))
        self.assertIn("2 requests too many",
                      fo._count_problem({"n": 10, "ok": 12, "failed": 0, "timed_out": 0, "cancelled": 0}, {}))
        self.assertEqual(fo._count_problem({"n": 10, "ok": 10, "failed": 0}, {}), "no timed_out/cancelled counter")
        # Without an n counter the name's N counts.
        self.assertIn("≠ n 5", fo._count_problem({"ok": 4, "failed": 0, "timed_out": 0, "cancelled": 0}, {"n": 5}))

    def test_errors_listed(self):
        self.assertEqual([e["message"] for e in self.summary["errors"]], ["server answered 503"])

    def test_name_without_a_key_is_an_error(self):
        entry = fan_entry("event_loop", 10, 1, 0, 1.0)
        entry["name"] = entry["run_name"] = entry["name"].replace("/bytes:64", "")
        self.data["benchmarks"].append(entry)
        self.assertEqual(summarize(self.data)["errors"][-1]["message"], "no bytes in the benchmark name")

    def test_rate_vs_wrk_at_k64(self):
        self.assertAlmostEqual(self.summary["rate_vs_wrk"]["event_loop"], 0.92)
        cell = self.summary["rate_vs_wrk_cell"]["fibers_mt"]
        self.assertEqual((cell["k"], cell["workers"]), (64, 2))
        self.assertAlmostEqual(cell["ratio"], 1.1)

    def test_rate_vs_wrk_closest_k(self):
        self.data["benchmarks"] = [b for b in self.data["benchmarks"] if not b["name"].startswith("fan_out/wrk/k:64/")]
        cell = summarize(self.data)["rate_vs_wrk_cell"]["event_loop"]
        self.assertEqual(cell["k"], 128)
        self.assertAlmostEqual(cell["ratio"], 46000 * 2 ** 0.1 / 60000)

    def test_stated_cells_and_checks_come_from_the_run(self):
        stated = json.loads(json.dumps(fo.STATED_BEFORE_CONTEXT))
        stated["rate"]["k"] = 128
        stated["checks"]["event_loop_vs_wrk"]["limit"] = 0.95
        self.data["context"]["fan_out_stated"] = json.dumps(stated)
        summary = summarize(self.data)
        self.assertEqual(summary["rate_vs_wrk_cell"]["event_loop"]["k"], 128)
        self.assertEqual(summary["checks"]["event_loop_vs_wrk"]["limit"], 0.95)
        self.data["context"]["fan_out_stated"] = "[1]"
        with self.assertRaisesRegex(res.ResultsError, "fan_out_stated is not the object concbench writes"):
            summarize(self.data)

    def test_closest_k_on_a_log_scale_ties_to_the_larger(self):
        def closest(ks):
            summary = {"stated": fo.STATED_BEFORE_CONTEXT, "workers": {"s": 1}, "wrk": [{"k": k, "delay_us": 0, "bytes": 64, "requests_per_s": 100.0}
                                                     for k in ks],
                       "cells": {"s": [dict(fo.BASE, n=100, k=k, delay_us=0, workers=1, requests_per_s=50.0)
                                       for k in ks]}}
            return fo._rate_vs_wrk(summary, "s")["k"]
        self.assertEqual(closest([32, 100]), 100)  # 0.64 octaves against 1 (linearly, 32 is closer)
        self.assertEqual(closest([16, 256]), 256)

    def test_missing_wrk_is_null(self):
        self.data["benchmarks"] = [b for b in self.data["benchmarks"] if "/wrk/" not in b["name"]]
        summary = summarize(self.data)
        self.assertEqual(set(summary["rate_vs_wrk"].values()), {None})
        self.assertIsNone(summary["checks"]["event_loop_vs_wrk"]["held"])
        text = "\n".join(fo.conclusions(summary))
        self.assertIn("wrk was not measured in this run (no fan_out/wrk entry at delay 0 with 64 B bodies), "
                      "so requests per second have no limit to compare with.", text)
        self.assertIn("| event_loop against wrk | ≥ 0.9× wrk's requests/s, same connections (K=64 or the closest) | "
                      "wrk was not measured | – not computed |", "\n".join(fo._checks_table(summary)))

    def test_no_k_shared_with_wrk(self):
        self.data["benchmarks"] = [b for b in self.data["benchmarks"] if not b["name"].startswith("fan_out/wrk/")]
        self.data["benchmarks"].append(wrk_entry(512, 70000))
        cell = summarize(self.data)["rate_vs_wrk_cell"]["event_loop"]
        self.assertEqual((cell["ratio"], cell["status"], cell["reason"]),
                         (None, "not_run", "no K measured by both at delay 0"))

    def test_headline_cell_without_ideal_ratio(self):
        for b in self.data["benchmarks"]:
            if b["name"].startswith(name("fibers", 10000, 100, 10000) + "/"):
                del b["ideal_ratio"]
        summary = summarize(self.data)
        self.assertEqual((summary["ideal_ratio"]["fibers"], summary["checks"]["fibers_ideal"]["held"]), (None, None))
        text = "\n".join(fo.conclusions(summary))
        self.assertIn("fibers reported no ideal_ratio", text)
        self.assertIn("| fibers against the ideal | ≤ 1.1× at N=10000, K=100, delay 10 ms | no ideal_ratio counter | "
                      "– not computed |", "\n".join(fo._checks_table(summary)))

    def test_footprint_at_largest_k_with_delay(self):
        fp = self.summary["footprint"]
        self.assertEqual((fp["event_loop"]["k"], fp["event_loop"]["delay_us"]), (1000, 10000))
        self.assertEqual(fp["fibers_mt"]["bytes_per_in_flight"], 4096)  # 2048 x 2 workers
        self.assertAlmostEqual(fp["event_loop"]["cpu_us_per_request"], 2)
        # The pool never ran K=1000 (skipped): its largest K at delay > 0 is 100, at 1 ms.
        self.assertEqual((fp[POOL]["k"], fp[POOL]["delay_us"], fp[POOL]["in_flight_limit"]), (100, 1000, 2))

    def test_groups_paired_where_fail_ran(self):
        [g] = self.summary["groups"]
        self.assertEqual((g["series"], g["fail"], g["all"]["cancel_us"], g["settled"]["failed"]),
                         ("event_loop", 0.01, 850, 10))

    def test_latency_cell_is_the_headline_else_the_busiest_delay_0(self):
        cell = self.summary["latency_cell"]
        self.assertEqual(cell["where"], fo.STATED_BEFORE_CONTEXT["ideal"])
        self.assertEqual(cell["series"]["event_loop"]["p99"], 20200)
        self.assertNotIn(POOL, cell["series"])
        self.data["benchmarks"] = [b for b in self.data["benchmarks"] if "delay_us:10000/" not in b["name"]]
        cell = summarize(self.data)["latency_cell"]
        self.assertEqual((cell["where"]["k"], cell["where"]["delay_us"], cell["reason"]),
                         (128, 0, "the busiest delay-0 cell"))

    def test_json_round_trip(self):
        self.assertEqual(json.loads(json.dumps(self.summary)), self.summary)


class ChecksTest(unittest.TestCase):
    def check(self, name_, series, wall_ms, k=100, delay=10000):
        data = fan_results()
        set_wall(data, series, 1, 10000, k, delay, wall_ms)
        return summarize(data)["checks"][name_]

    def test_event_loop_ideal_boundary(self):
        self.assertTrue(self.check("event_loop_ideal", "event_loop", 1050)["held"])
        check = self.check("event_loop_ideal", "event_loop", 1051)
        self.assertFalse(check["held"])
        self.assertAlmostEqual(check["value"], 1.051)

    def test_fibers_ideal_boundary(self):
        self.assertTrue(self.check("fibers_ideal", "fibers", 1100)["held"])
        self.assertFalse(self.check("fibers_ideal", "fibers", 1101)["held"])

    def test_event_loop_vs_wrk_boundary(self):
        # wrk 50k/s at K=64: 0.9x is 45k/s, N=10000 in 222.2 ms.
        self.assertTrue(self.check("event_loop_vs_wrk", "event_loop", 10000 / 45000 * 1e3, k=64, delay=0)["held"])
        check = self.check("event_loop_vs_wrk", "event_loop", 10000 / 44990 * 1e3, k=64, delay=0)
        self.assertFalse(check["held"])
        self.assertEqual(check["k"], 64)

    def test_unmeasured_check_not_computed(self):
        data = fan_results()
        data["benchmarks"] = [b for b in data["benchmarks"] if "/fibers/" not in b["name"]]
        check = summarize(data)["checks"]["fibers_ideal"]
        self.assertEqual((check["held"], check["reason"]), (None, "not run"))

    def test_counts_hold_without_mismatches(self):
        data = fan_results()
        for b in data["benchmarks"]:
            if b.get("ok") == 9997:
                b["ok"] = 10000
        counts = summarize(data)["checks"]["counts"]
        self.assertEqual((counts["held"], counts["mismatches"]), (True, 0))


class ConclusionsTest(unittest.TestCase):
    def setUp(self):
        self.text = "\n".join(fo.conclusions(summarize(fan_results())))

    def test_ideal_sentence(self):
        self.assertIn("event_loop completes N=10000, K=100, delay 10 ms in 1.020× the ideal 1 s; fibers 1.060×; "
                      "fibers_mt 1.030× with 2 workers; serial was skipped (ideal 100 s exceeds 2 s); "
                      "thread_pool pool:workers was skipped (ideal 50 s exceeds 2 s); thread_pool "
                      "pool:per_request has no valid run (ok 9997 + failed 0 + timed_out 0 + cancelled 0 = 9997 "
                      "≠ n 10000 (3 requests unaccounted for)).", self.text)

    def test_footprint_prefers_n_equal_to_k(self):
        def cell(n):
            return {"group": "settled", "bytes": 64, "fail": 0, "n": n, "k": 1000, "delay_us": 1000, "workers": 1,
                    "in_flight_limit": 1000, "bytes_per_in_flight": n, "peak_rss_bytes": 1, "cpu_us_per_request": 1}
        summary = {"workers": {"event_loop": 1}, "cells": {"event_loop": [cell(10000), cell(1000)]}}
        self.assertEqual(fo._footprint(summary, "event_loop")["n"], 1000)

    def test_repeated_cells_state_their_median_and_range(self):
        """The stated cells run several times: the figures are the median aggregate, and
        the table and the check give the lowest and highest run; one run shows no range."""
        data = fan_results()
        cell = name("event_loop", 10000, 100, 10000)
        runs = [b for b in data["benchmarks"] if b["name"].startswith(cell + "/")]
        self.assertEqual(len(runs), 1)
        first = runs[0]
        for i, wall in enumerate((1010.0, 1070.0), start=1):
            again = dict(first, repetition_index=i, real_time=wall, ideal_ratio=wall / first["ideal_ms"],
                         requests_per_s=first["n"] / wall * 1e3)
            data["benchmarks"].append(again)
        for b in runs + data["benchmarks"][-2:]:
            b["repetitions"] = 3
        median = dict(first, run_type="aggregate", aggregate_name="median",
                      name=first["name"] + "_median", ideal_ratio=1.02)
        data["benchmarks"].append(median)
        summary = summarize(data)
        self.assertEqual(summary["ideal_ratio"]["event_loop"], 1.02)
        self.assertEqual(summary["ideal_cell"]["event_loop"]["range"], [1.01, 1.07])
        table = "\n".join(fo._ideal_table(summary))
        self.assertIn("| event_loop | 1 | 100 | 1 s | 1.02 s | 1.020× (1.010–1.070 over 3 runs) |", table)
        self.assertIn("| fibers | 1 | 100 | 1 s | 1.06 s | 1.060× |", table)
        self.assertIn("the runs' lowest and highest follow it", table)
        self.assertIn("| event_loop against the ideal | ≤ 1.05× at N=10000, K=100, delay 10 ms | "
                      "1.020× (1.010–1.070 over 3 runs) | ✓ held |", "\n".join(fo._checks_table(summary)))

    def test_wrk_at_the_headline_cell_is_the_floor(self):
        data = fan_results()
        peer = wrk_entry(100, 8950)
        peer["name"] = peer["run_name"] = peer["name"].replace("delay_us:0/", "delay_us:10000/")
        peer["ideal_ratio"] = 100 / 0.01 / 8950
        data["benchmarks"].append(peer)
        summary = summarize(data)
        self.assertAlmostEqual(summary["wrk_ideal_ratio"], 1.117, places=3)
        self.assertIn("wrk, driving the same server with 100 connections, reaches 1.117× the ideal there",
                      "\n".join(fo.conclusions(summary)))
        self.assertIn("| wrk (peer, 100 connections for 2 s) | – | 100 | – | – | 1.117× |",
                      "\n".join(fo._ideal_table(summary)))
        # It is no delay-0 peer: the rate comparison is unchanged.
        self.assertEqual(summary["rate_vs_wrk"], summarize(fan_results())["rate_vs_wrk"])
        self.assertIsNone(summarize(fan_results())["wrk_ideal_ratio"])

    def test_held_only_phrase(self):
        summary = summarize(fan_results())
        summary["ideal_cell"]["fibers_mt"].update(in_flight_limit=50, ratio=2.1, own_ideal_ms=2000)
        self.assertIn("fibers_mt 2.100× with 2 workers, holding only 50 requests in flight (its own ideal 2 s)",
                      "\n".join(fo.conclusions(summary)))

    def test_rate_sentence(self):
        self.assertIn("At delay 0, requests per second against wrk with as many connections: serial 0.18× at K=64 "
                      "(9k/s against 50k/s); event_loop 0.92× at K=64 (46k/s against 50k/s);", self.text)

    def test_footprint_sentence(self):
        self.assertIn("Client memory per in-flight request, at each series' largest K measured at delay > 0: "
                      "from 2 KiB (event_loop) to 4 KiB (", self.text)
        self.assertIn("Client CPU per request, at each series' largest K measured at delay > 0: 2 µs for every "
                      "series.", self.text)

    def test_group_sentence(self):
        # One group in the data: group:all stopped after 850 µs, cancelling 959 of 1000, in 120 ms
        # against settled's 110 ms.
        self.assertIn("Failing fast (group:all, fail 0.01) stopped 850 µs after the first failure, cancelling 96% of "
                      "the requests, in 1.1× group:settled's wall time (the table gives each series).", self.text)
        self.assertNotIn("With fail 0.01", self.text)  # the group table has each series

    def test_checks_table(self):
        table = "\n".join(fo._checks_table(summarize(fan_results())))
        self.assertIn("| check | limit | measured | held |", table)
        self.assertIn("| event_loop against the ideal | ≤ 1.05× at N=10000, K=100, delay 10 ms | 1.020× | ✓ held |", table)
        self.assertIn("| fibers against the ideal | ≤ 1.1× at N=10000, K=100, delay 10 ms | 1.060× | ✓ held |", table)
        self.assertIn("| event_loop against wrk | ≥ 0.9× wrk's requests/s, same connections (K=64) | 0.920× | ✓ held |",
                      table)
        self.assertIn("| every request accounted for | ok + failed + timed_out + cancelled = n in every cell | 1 of 59 "
                      "cells differ (under Errors, left out of every table, plot and check) | ✗ did not hold |", table)
        self.assertNotIn("Check,", self.text)
        self.assertIn("6 cells were not run; the table above gives each reason.", self.text)


class OutputTest(ReportOutput, unittest.TestCase):
    """Plots and the report section through report.generate, as scripts/plot runs it."""

    results = staticmethod(fan_results)

    def test_plots_written(self):
        self.assert_plots_written((fo.PLOT_IDEAL, fo.PLOT_RATE, fo.PLOT_LATENCY))

    def test_plot_contents(self):
        self.assert_labels(fo.PLOT_IDEAL, ("delay 1 ms, N=1000", "delay 10 ms, N=10000",
                                           "ideal: ceil(N / K) × delay", "fibers_mt (2 workers)"))
        self.assert_labels(fo.PLOT_RATE, ("wrk -c K on the same server (the limit)", "event_loop"))
        self.assert_labels(fo.PLOT_LATENCY, ("p99.9", "max", "fibers"))

    def test_summary_json(self):
        summary = json.loads((self.dir / "summary.json").read_text())["workloads"]["fan_out"]
        self.assertAlmostEqual(summary["ideal_ratio"]["event_loop"], 1.02)
        self.assertIsNone(summary["ideal_ratio"][POOL])
        self.assertAlmostEqual(summary["rate_vs_wrk"]["event_loop"], 0.92)

    def test_report_section(self):
        for expected in ("- **Fan-out: how close to the ideal?** Wall time over the ideal at N=10000, K=100, delay "
                         "10 ms: event_loop 1.02×, fibers 1.06×, fibers_mt 1.03× with 2 workers",
                         "- **Fan-out: how close to wrk?** Requests per second over wrk's with as many connections, "
                         "at delay 0: ",
                         "## fan_out: N requests, K in flight",
                         "Server: concbench-server --threads=1 on 127.0.0.1 (child process).",
                         "| event_loop | 1 | 100 | 1 s | 1.02 s | 1.020× |",
                         "| thread_pool pool:workers | – | – | – | – | skipped: ideal 50 s exceeds 2 s |",
                         "| event_loop | 1 | 64 | 46k/s | 50k/s | 0.92× |",
                         "| thread_pool pool:workers | 2 | 1000 | 100 | 1 ms | 2 | 4 KiB | 50 MiB | 2 µs |",
                         "| event_loop | 1 | 1000 | 10 | 1 ms | 0.01 | all | 40 | 1 | 0 | 959 | 120 ms | 850 µs |",
                         "| `fan_out/serial/group:settled/n:10000/k:100/delay_us:10000/bytes:64/fail:0/workers:1` "
                         "| ideal 100 s exceeds 2 s |",
                         "### Errors", "server answered 503",
                         "3 requests unaccounted for); not a valid run, left out of every table, plot and check",
                         "### Conclusions"):
            self.assertIn(expected, self.report)

    def test_no_valid_cells_gives_no_plots(self):
        data = fan_results()
        data["benchmarks"] = [b for b in data["benchmarks"] if b.get("error_occurred")]
        summary = summarize(data)
        self.assertEqual(fo.plot(summary, self.dir / "empty"), [])
        text = fo.report(summary, [])
        self.assertIn("server answered 503", text)
        self.assertIn("| ideal 50 s exceeds 2 s |", text)  # the skipped cells still say why
        self.assertNotIn("| series |", text)
        self.assertNotIn("### Conclusions", text)

    def test_no_series_measures_the_headline_cell(self):
        data = fan_results()
        data["benchmarks"] = [b for b in data["benchmarks"] if "n:10000/k:100/delay_us:10000/" not in b["name"]]
        self.assertIn("No series completed N=10000, K=100, delay 10 ms: serial was skipped (ideal 100 s "
                      "exceeds 2 s); event_loop not run;", "\n".join(fo.conclusions(summarize(data))))



class PeerTest(unittest.TestCase):
    """A peer's cells: after the C++ models, timed by the wall it reported (its real
    time holds its start-up), with no client CPU or memory per request of concbench's."""

    def setUp(self):
        self.data = fan_results()
        peer = fan_entry("peer_asyncio", 10000, 100, 10000, wall_ms=9000.0, wall_ms_counter=None)
        del peer["wall_ms_counter"], peer["bytes_per_in_flight"]
        peer.update(wall_ms=6000.0, ideal_ratio=6.0)
        self.data["benchmarks"].append(peer)
        self.summary = summarize(self.data)

    def test_after_the_cpp_models_with_their_own_wall(self):
        self.assertEqual(self.summary["series"][-1], "peer_asyncio")
        cell = self.summary["cells"]["peer_asyncio"][0]
        self.assertEqual((cell["wall_ms"], cell["cpu_ms"], cell["cpu_us_per_request"]), (6000.0, None, None))
        self.assertEqual(self.summary["ideal_cell"]["peer_asyncio"]["ratio"], 6.0)

    def test_in_the_tables_and_answers(self):
        text = fo.report(self.summary, [])
        self.assertIn("| peer_asyncio | 1 | 100 | 1 s | 6 s | 6.000× |", text)
        self.assertIn("peer_asyncio 6×", "\n".join(fo.answers(self.summary)))


if __name__ == "__main__":
    unittest.main()
