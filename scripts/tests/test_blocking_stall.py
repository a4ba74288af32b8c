import copy
import functools
import json
import tempfile
import unittest
from pathlib import Path

from synthetic import ReportOutput, error_entry

import results as res
import stats
import units
from workloads import blocking_stall as bs

WORK = (1, 10, 100, 1000, 10000, 100000)
FLOOR = 50  # light p99 with no work, inline
# Fixed cost each offload adds to the heavy request's p50, by kind (inline's own
# overhead included): offload cost = offload's minus inline's.
HEAVY_OVERHEAD = {"cpu": {"inline": 1, "threads": 12, "processes": 55},
                  "sleep": {"inline": 59, "threads": 71, "processes": 119}}
# Each cell runs nine times: light figures scaled by these, heavy p50 shifted by those,
# so that medians and shifts over the runs are the nominal values.
SCALE = (0.97, 0.99, 1.0, 1.0, 1.0, 1.01, 1.02, 1.03, 1.04)
SHIFT = (-4, -3, -2, -1, 0, 1, 2, 3, 4)


def name(model, kind, offload, work, rate, workers):
    return (f"blocking_stall/{model}/kind:{kind}/offload:{offload}/work_us:{work}/rate:{rate}"
            f"/workers:{workers}/process_time/real_time")


def stall_entries(model, kind, offload, work, light_p99, rate=100, workers=1, runs=len(SCALE), p99_runs=None,
                  **counters):
    """One cell's runs; p99_runs, where given, are its light p99s run by run."""
    n = name(model, kind, offload, work, rate, workers)
    heavy_every = max(2000, 4 * work)
    p99_runs = p99_runs or [light_p99 * s for s in SCALE[:runs]]
    out = []
    for i, (p99, shift) in enumerate(zip(p99_runs, SHIFT)):
        heavy_p50 = work + HEAVY_OVERHEAD[kind][offload] + shift
        out.append({"name": n, "run_name": n, "run_type": "iteration", "repetitions": len(p99_runs),
                    "repetition_index": i, "iterations": 1, "real_time": 1.0, "cpu_time": 0.5, "time_unit": "s",
                    "light_p50_us": p99 / 2, "light_p90_us": p99 * 0.8, "light_p99_us": p99,
                    "light_p999_us": p99 * 1.5, "light_max_us": p99 * 2,
                    "heavy_p50_us": heavy_p50, "heavy_p99_us": heavy_p50 * 2, "lag_p99_us": p99,
                    "light_per_s": rate, "heavy_per_s": 1e6 / heavy_every, "heavy_every_us": heavy_every,
                    "cpu_wait_share": 0.001, "involuntary_switches": 3,
                    "scheduled": 1000, "completed": 1000, "failed": 0, "workers": workers, **counters})
    return out


def sweep(model, kind, offload, p99s, works=WORK, **kw):
    out = []
    if offload == "inline" and kw.get("rate", 100) == 100:
        out += stall_entries(model, kind, offload, bs.FLOOR_WORK_US, FLOOR, **kw)
    for w, v in zip(works, p99s):
        out += stall_entries(model, kind, offload, w, v, **kw)
    return out


def stall_results():
    """event_loop: every mode, both kinds, two rates; fibers: kind:cpu, no processes;
    thread_pool: one failed run and one run that lost requests. Every inline sweep at
    100/s has a floor of 50 µs. The expected numbers in the tests below follow from these."""
    benchmarks = (
        # kind:cpu. threads wins from 100 on. processes wins by far at 10, but inline is
        # at the floor there (52 against 50), loses at 100, then wins from 1000 on.
        sweep("event_loop", "cpu", "inline", (50, 52, 150, 1100, 11000, 110000))
        + sweep("event_loop", "cpu", "threads", (55, 50, 60, 70, 80, 90))
        + sweep("event_loop", "cpu", "processes", (50, 30, 400, 90, 100, 110),
                cpu_wait_share=0.04)
        # A busier rate where threads wins everywhere: break-even uses the lowest rate.
        + sweep("event_loop", "cpu", "inline", (500,) * 6, rate=1000)
        + sweep("event_loop", "cpu", "threads", (100,) * 6, rate=1000)
        # kind:sleep. threads wins from 100; processes loses from 10 on: it never pays.
        + sweep("event_loop", "sleep", "inline", (60, 70, 160, 1100, 10100, 100100))
        + sweep("event_loop", "sleep", "threads", (70, 75, 80, 85, 90, 95))
        + sweep("event_loop", "sleep", "processes", (50, 200, 300, 2000, 20000, 200000))
        # fibers: within the margin up to 1 ms, far lower from 10 ms. The stall shows too
        # little at 1 ms (900 < 0.95 x the predicted 960); no processes runs.
        + sweep("fibers", "cpu", "inline", (50, 52, 150, 900, 11000, 110000))
        + sweep("fibers", "cpu", "threads", (48, 50, 140, 800, 900, 1000))
        + stall_entries("thread_pool", "sleep", "inline", 1000, 300, workers=2)
        + stall_entries("thread_pool", "sleep", "threads", 1000, 200, workers=2)[:8]
        + stall_entries("thread_pool", "sleep", "threads", 1000, 200, workers=2, scheduled=100,
                        completed=97, failed=1)[8:]
        + [error_entry(name("thread_pool", "sleep", "processes", 1000, 100, 2),
                       "worker process died: request failed")])
    return {
        "command": ["scripts/bench"],
        "context": {"date": "2025-01-01T00:00:00", "cpu_model": "Test CPU", "cores": "2",
                    "calib_thread_rtt_us": "4", "calib_thread_rtt_cross_core_us": "20",
                    "calib_pipe_rtt_us": "10", "calib_pipe_rtt_cross_core_us": "30",
                    "calib_thread_pool_rtt_us": "10", "calib_process_pool_rtt_us": "50"},
        "runs": [], "peers": {}, "benchmarks": benchmarks,
    }


def summarize(data):
    records = [r for r in res.reduce_runs(data["benchmarks"]) if r["workload"] == bs.NAME]
    return bs.summarize(records, data)


@functools.lru_cache(maxsize=None)
def _stall_summary():
    return summarize(stall_results())


def stall_summary():
    """summarize(stall_results()), computed once (its resamples take a while); each test
    gets a copy of its own to change."""
    return copy.deepcopy(_stall_summary())


def hiccups_in_four_of_nine(hiccup_us):
    """Nine offloaded runs near 60 µs, four of them lifted to about hiccup_us."""
    return [60, 61, hiccup_us, 59, hiccup_us * 0.85, 62, 58, hiccup_us * 0.95, hiccup_us * 0.8]


def runs(value, spread=0.03):
    """Nine runs around value, within ±spread; their median, and that of their lower five, is value."""
    return [value * (1 + spread * s) for s in (-1, -0.5, 0, 0, 0, 0.25, 0.5, 0.75, 1)]


class RuleTest(unittest.TestCase):
    """The rule on synthetic runs: verdict at one size, break_even over sizes."""

    SIZES = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]

    def crossover(self, at, offload_at=lambda w: 60, spikes=None):
        """Inline p99 at the floor (50) up to size `at`, then 20 x work; offloaded p99
        from offload_at. spikes: {size: [runs]} replacing the offloaded runs there."""
        comparisons = []
        for w in self.SIZES:
            inline = runs(50 if w < at else 20 * w)
            offload = (spikes or {}).get(w) or runs(offload_at(w))
            comparisons.append(bs.verdict(inline, offload, runs(50)))
        return comparisons

    def test_a_clean_crossover_is_found_at_its_size(self):
        found = bs.break_even(self.SIZES, self.crossover(at=20))
        self.assertEqual(found["status"], "pays_off")
        self.assertEqual(found["from_us"], 20)
        self.assertEqual((found["low_us"], found["high_us"]), (20, 20))
        self.assertFalse(found["never_consistent"])

    def test_a_single_spike_at_a_large_size_does_not_move_it(self):
        # One run of nine at 500 µs is 30 ms, far above inline's 10 ms: the old
        # "beats inline at every larger size" moved the break-even to 1 ms.
        spiky = runs(60)
        spiky[-1] = 30000
        comparisons = self.crossover(at=20, spikes={500: spiky})
        self.assertEqual(comparisons[self.SIZES.index(500)]["verdict"], bs.WIN)
        found = bs.break_even(self.SIZES, comparisons)
        self.assertEqual((found["from_us"], found["low_us"], found["high_us"]), (20, 20, 20))
        # Four of nine, which the floor does not have: no sure win there, but the
        # estimate still looks like one, and only the interval reaches past it.
        spiky[-4:] = [30000] * 4
        comparisons = self.crossover(at=20, spikes={500: spiky})
        self.assertEqual(comparisons[self.SIZES.index(500)]["verdict"], bs.NO_DIFFERENCE)
        found = bs.break_even(self.SIZES, comparisons)
        self.assertEqual((found["from_us"], found["low_us"], found["high_us"]), (20, 20, 1000))

    def test_hiccups_the_floor_shows_are_left_out_of_every_cell(self):
        # Four of nine floor runs lifted: the host took that share of every cell's runs.
        hiccups = [1500, 1800, 2100, 2400]
        floor = runs(50)[:5] + hiccups
        self.assertAlmostEqual(bs.host_share(floor), 4 / 9)
        self.assertAlmostEqual(bs.floor_us(floor), 50)
        inline, offloaded = runs(300)[:5] + hiccups, runs(60)[:5] + hiccups
        self.assertEqual(bs.verdict(inline, offloaded, floor)["verdict"], bs.WIN)
        # With all floor runs clean, the same lifted runs are the cells' own: no sure win.
        self.assertEqual(bs.host_share(runs(50)), 0)
        self.assertEqual(bs.verdict(inline, offloaded, runs(50))["verdict"], bs.NO_DIFFERENCE)
        # The host never takes more than half.
        self.assertEqual(bs.host_share([50] * 3 + [1000] * 6), bs.MAX_HOST_SHARE)

    def test_noise_at_the_floor_makes_no_win(self):
        # Offloaded 35 against inline 50-60: far below 0.8x inline, but inline is no
        # higher than the floor could be, so no offload can beat it by the margin.
        floor = [45, 50, 55, 60, 52, 48, 58, 47, 53]
        offloaded = [35, 36, 34, 37, 33, 35, 36, 34, 35]
        at_floor = [50, 52, 48, 55, 51, 49, 53, 50, 54]
        for inline in (at_floor, [60, 66, 54, 70, 58, 62, 64, 56, 68]):
            comparison = bs.verdict(inline, offloaded, floor)
            self.assertEqual(comparison["verdict"], bs.NO_DIFFERENCE, inline)
        self.assertFalse(bs.verdict(at_floor, offloaded, floor)["could_win"])
        # The same runs with inline well clear of the floor do win.
        self.assertEqual(bs.verdict([3 * v for v in at_floor], offloaded, floor)["verdict"], bs.WIN)

    def test_noise_at_the_floor_leaves_the_break_even_where_the_stall_begins(self):
        comparisons = self.crossover(at=100, offload_at=lambda w: 35)
        self.assertEqual([c["verdict"] for c in comparisons[:6]], [bs.NO_DIFFERENCE] * 6)
        self.assertEqual(bs.break_even(self.SIZES, comparisons)["from_us"], 100)

    def test_never_pays_is_reported_as_such(self):
        comparisons = self.crossover(at=20, offload_at=lambda w: 40 * w)  # always twice inline
        self.assertEqual({c["verdict"] for c in comparisons[4:]}, {bs.LOSS})
        found = bs.break_even(self.SIZES, comparisons)
        self.assertEqual((found["status"], found["from_us"], found["low_us"]), ("never", None, None))
        self.assertTrue(found["never_consistent"])

    def test_a_win_followed_by_a_loss_is_no_break_even(self):
        offload = {20: 60, 50: 60, 100: 10000}  # wins at 20 and 50, loses at 100, wins above
        comparisons = self.crossover(at=20, offload_at=lambda w: offload.get(w, 60))
        self.assertEqual(comparisons[self.SIZES.index(100)]["verdict"], bs.LOSS)
        found = bs.break_even(self.SIZES, comparisons)
        self.assertEqual(found["from_us"], 200)
        self.assertEqual((found["low_us"], found["high_us"]), (200, 200))

    def test_a_lone_win_in_a_stretch_near_the_margin_is_not_the_break_even(self):
        # A sure win at 5 µs (0.4 of inline), then 0.9 of inline from 10 to 200 µs, which
        # neither wins nor loses, then sure wins: a curve that runs along the margin.
        # "Loses at no larger size" made 5 µs the break-even.
        ratio = {5: 0.4, **{w: 0.9 for w in (10, 20, 50, 100, 200)}}
        comparisons = self.crossover(at=5, offload_at=lambda w: 20 * w * ratio.get(w, 0.2))
        self.assertEqual([c["verdict"] for c in comparisons[2:]],
                         [bs.WIN] + [bs.NO_DIFFERENCE] * 5 + [bs.WIN] * 2)
        found = bs.break_even(self.SIZES, comparisons)
        self.assertEqual((found["status"], found["from_us"]), ("pays_off", 500))
        self.assertEqual((found["low_us"], found["high_us"], found["never_consistent"]), (500, 500, False))

    def test_the_interval_reaches_past_a_larger_size_that_is_no_sure_win(self):
        # Hiccups in four of nine offloaded runs at 200 µs, which the floor does not have:
        # it still looks like a win there, so the break-even stays at 20, but the true
        # one could lie above 200.
        comparisons = self.crossover(at=20, spikes={200: hiccups_in_four_of_nine(30000)})
        self.assertEqual(comparisons[self.SIZES.index(200)]["verdict"], bs.NO_DIFFERENCE)
        self.assertTrue(comparisons[self.SIZES.index(200)]["looks_like_win"])
        found = bs.break_even(self.SIZES, comparisons)
        self.assertEqual((found["from_us"], found["low_us"], found["high_us"]), (20, 20, 500))
        # The same hiccups at the largest size: the data allow that it never pays off.
        found = bs.break_even(self.SIZES, self.crossover(at=20, spikes={1000: hiccups_in_four_of_nine(300000)}))
        self.assertEqual((found["from_us"], found["high_us"], found["never_consistent"]), (20, 20, True))

    def test_resamples_reach_above_a_sure_win_at_the_margin(self):
        # 0.7 of inline at 50 µs, its interval's top just under 0.8: a sure win there, and
        # no size above 50 could be the true break-even. Drawn again, the runs often give
        # no sure win at 50, and the rule puts the break-even at 100: the interval says so.
        sizes, floor = [20, 50, 100, 200], runs(50)
        inline = {w: runs(20 * w, 0.15) for w in sizes}
        offload = {w: runs(20 * w * {20: 1, 50: 0.7}.get(w, 0.3), 0.15) for w in sizes}
        comparisons = [bs.verdict(inline[w], offload[w], floor) for w in sizes]
        self.assertLess(comparisons[1]["ratio"]["high"], 0.8)
        found = bs.break_even(sizes, comparisons)
        self.assertEqual((found["from_us"], found["low_us"], found["high_us"]), (50, 50, 50))
        widened = bs.with_resampled_interval(found, sizes, inline, offload, floor)
        self.assertEqual(widened["resampled"], {"low_us": 50, "high_us": 100, "never": False})
        self.assertEqual((widened["from_us"], widened["low_us"], widened["high_us"]), (50, 50, 100))
        self.assertEqual(bs.with_resampled_interval(found, sizes, inline, offload, floor), widened)  # seeded
        # A win well clear of the margin stays put under resampling.
        offload[50] = runs(1000 * 0.5, 0.15)
        clear = bs.with_resampled_interval(bs.break_even(sizes, [bs.verdict(inline[w], offload[w], floor)
                                                                 for w in sizes]), sizes, inline, offload, floor)
        self.assertEqual((clear["from_us"], clear["low_us"], clear["high_us"]), (50, 50, 50))
        # 0.85 of inline everywhere: no resample pays off, and the interval is every size
        # that could win, or never.
        near = {w: runs(20 * w * 0.85, 0.15) for w in sizes}
        never = bs.with_resampled_interval(bs.break_even(sizes, [bs.verdict(inline[w], near[w], floor)
                                                                 for w in sizes]), sizes, inline, near, floor)
        self.assertEqual(never["resampled"], {"low_us": None, "high_us": None, "never": True})
        self.assertEqual((never["status"], never["low_us"], never["high_us"], never["never_consistent"]),
                         ("never", 20, 200, True))
        # A sure win at the margin at the largest size only: some resamples never pay off.
        last = {w: runs(20 * w * (0.7 if w == 200 else 1), 0.15) for w in sizes}
        found = bs.break_even(sizes, [bs.verdict(inline[w], last[w], floor) for w in sizes])
        self.assertEqual((found["from_us"], found["never_consistent"]), (200, False))
        self.assertEqual(bs.with_resampled_interval(found, sizes, inline, last, floor)["resampled"],
                         {"low_us": 200, "high_us": 200, "never": True})

    def test_a_win_must_clear_the_margin_with_confidence(self):
        def verdict(ratio, spread):
            return bs.verdict(runs(1000, spread), runs(1000 * ratio, spread), runs(50))["verdict"]
        self.assertEqual(verdict(0.7, 0.01), bs.WIN)
        self.assertEqual(verdict(0.7, 0.3), bs.NO_DIFFERENCE)  # too wide an interval to exclude 0.8
        self.assertEqual(verdict(0.82, 0.001), bs.NO_DIFFERENCE)
        self.assertEqual(verdict(1.3, 0.01), bs.LOSS)
        self.assertEqual(verdict(1.2, 0.01), bs.NO_DIFFERENCE)

    def test_too_few_runs_give_no_verdict(self):
        comparison = bs.verdict([100, 110], [10, 11], [50, 51])
        self.assertEqual(comparison["verdict"], bs.TOO_FEW_RUNS)
        found = bs.break_even([1], [comparison])
        self.assertEqual((found["status"], found["from_us"]), (bs.TOO_FEW_RUNS, None))
        self.assertEqual(stats.min_runs(), 4)

    def test_no_p99_is_no_verdict(self):
        self.assertEqual(bs.verdict([0, 0, 0, 0], runs(50))["verdict"], bs.TOO_FEW_RUNS)
        self.assertEqual(bs.verdict(runs(50) + [0], runs(30), runs(10) + [-1])["verdict"], bs.WIN)

    def test_never_with_sizes_that_could_win_says_so(self):
        found = bs.break_even([1, 2, 5], [bs.verdict(runs(100, 0.3), runs(85, 0.3)) for _ in range(3)])
        self.assertEqual((found["status"], found["low_us"], found["high_us"]), ("never", 1, 5))
        found.update(largest_work_us=5)
        self.assertEqual(bs._break_even_text(found), "never (to 5 µs; could be 1–5 µs)")

    def test_a_name_with_a_word_for_a_number_is_an_error(self):
        data = stall_results()
        data["benchmarks"].append(dict(data["benchmarks"][0], name=name("fibers", "cpu", "inline", "abc", 100, 1),
                                       run_name=name("fibers", "cpu", "inline", "abc", 100, 1)))
        summary = summarize(data)
        self.assertIn("work_us, rate and workers must be numbers", [e["message"] for e in summary["errors"]])

    def test_without_a_floor_the_margin_alone_decides(self):
        self.assertEqual(bs.verdict(runs(50), runs(30))["verdict"], bs.WIN)

    def test_the_estimate_finds_a_crossover_the_rule_lacks_the_power_to_be_sure_of(self):
        # Hiccups in four of nine offloaded runs at 20 µs: no sure win there, but the
        # estimates still cross at 20, where a second pass should look.
        comparisons = self.crossover(at=20, spikes={20: hiccups_in_four_of_nine(3000)})
        self.assertEqual(comparisons[self.SIZES.index(20)]["verdict"], bs.NO_DIFFERENCE)
        self.assertEqual(bs.break_even(self.SIZES, comparisons)["from_us"], 50)
        self.assertEqual(bs.crossover_estimate(self.SIZES, comparisons), 20)

    def test_a_lone_dip_below_the_margin_is_not_the_estimate(self):
        # Looks like a win at 2 µs (40 against 60), then not at 5 and 10 (60 against 60):
        # the estimates settle below the margin only from 20 on.
        offload = {2: 40, 5: 60, 10: 60}
        comparisons = [bs.verdict(runs(60 if w < 20 else 20 * w), runs(offload.get(w, 60)), runs(30))
                       for w in self.SIZES]
        self.assertTrue(comparisons[self.SIZES.index(2)]["looks_like_win"])
        self.assertFalse(comparisons[self.SIZES.index(5)]["looks_like_win"])
        self.assertEqual(bs.crossover_estimate(self.SIZES, comparisons), 20)
        # Looking like a win at the largest size only is an estimate there; not even that is none.
        self.assertEqual(bs.crossover_estimate(self.SIZES, self.crossover(at=self.SIZES[-1])), self.SIZES[-1])
        self.assertIsNone(bs.crossover_estimate(self.SIZES, self.crossover(at=10 * self.SIZES[-1])))

    def test_the_estimate_needs_every_size_above_it_to_look_like_a_win_and_a_stall_above_the_floor(self):
        offload = {20: 60, 50: 60, 100: 10000}
        comparisons = self.crossover(at=20, offload_at=lambda w: offload.get(w, 60))
        self.assertEqual(bs.crossover_estimate(self.SIZES, comparisons), 200)
        self.assertIsNone(bs.crossover_estimate(self.SIZES, self.crossover(at=20, offload_at=lambda w: 40 * w)))
        # Offloaded far below inline, but inline at the floor: that is no crossover yet.
        self.assertEqual(bs.crossover_estimate(self.SIZES, self.crossover(at=100, offload_at=lambda w: 35)), 100)


class BreakEvenTest(unittest.TestCase):
    def setUp(self):
        self.summary = stall_summary()

    def test_the_second_pass_runs_the_cells_around_each_crossover_estimate(self):
        found = self.summary["break_even"]["event_loop"]["cpu"]["threads"]
        self.assertEqual(found["estimate_us"], 100)
        # A peer is left out: each of its runs starts a process.
        self.summary["break_even"]["peer_node"] = self.summary["break_even"]["event_loop"]
        cells = bs.cells_to_refine(self.summary)
        def sizes(model, kind, offload):
            return sorted(w for m, k, o, _, _, w in cells if (m, k, o) == (model, kind, offload))
        # The size below the estimate, the estimate, and the two sizes above it.
        self.assertEqual(sizes("event_loop", "cpu", "threads"), [10, 100, 1000, 10000])
        self.assertIn(("event_loop", "cpu", "threads", 100, 1, 100), cells)  # at the rate and workers ruled on
        # processes looks like a loss at 100 and a win from 1000 on; the grid ends at 100000.
        self.assertEqual(sizes("event_loop", "cpu", "processes"), [100, 1000, 10000, 100000])
        # Both targets' sizes, and the floor, which every verdict is held against.
        self.assertEqual(sizes("event_loop", "cpu", "inline"), [bs.FLOOR_WORK_US, 10, 100, 1000, 10000, 100000])
        # The floor of each kind, pooled by the rule, even where that kind has nothing to refine.
        self.assertIn(("event_loop", "sleep", "inline", 100, 1, bs.FLOOR_WORK_US), cells)
        # kind:sleep to processes never looks like a win: nothing to refine.
        self.assertFalse({c for c in cells if c[1:3] == ("sleep", "processes")})
        self.assertFalse({c for c in cells if c[0] == "peer_node"})
        # An estimate at the smallest size has no size below it.
        self.summary["break_even"]["event_loop"]["sleep"]["threads"]["estimate_us"] = 1
        self.assertEqual(sorted(w for m, k, o, _, _, w in bs.cells_to_refine(self.summary)
                                if (m, k, o) == ("event_loop", "sleep", "threads")), [1, 10, 100])
        # Every cell named is one that ran.
        ran = {(m, k, o, int(r), int(wk), int(w)) for m, k, o, r, wk, w, _ in bs._walk(self.summary["series"])}
        self.assertLessEqual(cells, ran)

    def test_offload_keeps_winning_from_break_even(self):
        self.assertEqual(self.summary["break_even_us"]["event_loop"]["cpu"]["threads"], 100)
        self.assertEqual(self.summary["break_even_us"]["event_loop"]["sleep"]["threads"], 100)
        found = self.summary["break_even"]["event_loop"]["cpu"]["threads"]
        self.assertEqual((found["low_us"], found["high_us"], found["never_consistent"]), (100, 100, False))
        self.assertEqual(found["floor_p99_us"], FLOOR)

    def test_verdicts_at_each_size(self):
        found = self.summary["break_even"]["event_loop"]["cpu"]["processes"]
        self.assertEqual(found["from_us"], 1000)
        self.assertEqual(found["verdicts"], {"1": "no_difference", "10": "no_difference", "100": "loss",
                                             "1000": "win", "10000": "win", "100000": "win"})
        self.assertAlmostEqual(found["ratios"]["100"]["estimate"], 400 / 150)

    def test_never_pays_off_is_null(self):
        found = self.summary["break_even"]["event_loop"]["sleep"]["processes"]
        self.assertIsNone(self.summary["break_even_us"]["event_loop"]["sleep"]["processes"])
        self.assertEqual(found["status"], "never")

    def test_lowest_rate_used(self):
        found = self.summary["break_even"]["event_loop"]["cpu"]["threads"]
        self.assertEqual(found["rate"], 100)
        # At rate 1000 threads wins everywhere; both rates are kept in the series.
        self.assertEqual(set(self.summary["series"]["event_loop"]["cpu"]["threads"]), {"100", "1000"})
        self.assertEqual(self.summary["rates"], [100, 1000])

    def test_missing_offload_mode_is_null(self):
        self.assertIsNone(self.summary["break_even_us"]["fibers"]["cpu"]["processes"])
        self.assertEqual(self.summary["break_even"]["fibers"]["cpu"]["processes"]["status"], "missing")
        # 7 to 11% lower p99 up to 1 ms is within the margin; from 10 ms it is far lower.
        self.assertEqual(self.summary["break_even_us"]["fibers"]["cpu"]["threads"], 10000)
        self.assertNotIn("sleep", self.summary["break_even_us"]["fibers"])

    def test_the_floor_pools_the_runs_of_both_kinds(self):
        def cell(p99_runs):
            return {"light_p99_us": sorted(p99_runs)[2], "runs": {"light_p99_us": p99_runs}}
        hiccups = [50, 60, 900, 1000, 1100, 950, 1050, 980, 920]  # seven hiccups in nine
        cpu = {"inline": {"1": {"1": {"0": cell(hiccups),
                                      "3": cell(runs(200))}}},
               "threads": {"1": {"1": {"3": cell(runs(100))}}}}
        sleep = {"inline": {"1": {"1": {"0": cell(runs(50))}}}}
        self.assertEqual(sorted(bs._floor_runs({"cpu": cpu, "sleep": sleep}, ("1", "1"))),
                         sorted(hiccups + runs(50)))
        # The calm half of kind:cpu's floor alone sits at 920, over inline's 200: no win.
        self.assertEqual(bs._break_even({"cpu": cpu}, "cpu", "threads")["verdicts"], {"3": bs.NO_DIFFERENCE})
        # Pooled, its calm half's median is 50: inline is clear of it, and offloading wins.
        found = bs._break_even({"cpu": cpu, "sleep": sleep}, "cpu", "threads")
        self.assertEqual((found["verdicts"], found["floor_p99_us"]), ({"3": bs.WIN}, 50))

    def test_sentence_names_a_stall_far_above_the_nominal_work(self):
        def phrase(stall_us):
            point = {"light_p99_us": 200, "stall_p50_us": stall_us, "runs": {"light_p99_us": runs(200)}}
            by_offload = {"inline": {"1": {"1": {"3": point}}},
                          "threads": {"1": {"1": {"3": {"light_p99_us": 100, "runs": {"light_p99_us": runs(100)}}}}}}
            found = bs._break_even({"cpu": by_offload}, "cpu", "threads")
            found["smallest_work_us"] = 1  # so the phrase is "from", not "already at"
            return bs._pays_off_phrase(found)
        self.assertIn("held its thread for 77", phrase(77))
        self.assertNotIn("held its thread", phrase(5))

    def test_quick_runs_have_no_verdict(self):
        data = stall_results()
        data["benchmarks"] = [b for b in data["benchmarks"] if b.get("repetition_index", 0) < 2]
        summary = summarize(data)
        found = summary["break_even"]["event_loop"]["cpu"]["threads"]
        self.assertEqual((found["status"], found["from_us"]), (bs.TOO_FEW_RUNS, None))
        self.assertEqual(set(found["verdicts"].values()), {bs.TOO_FEW_RUNS})
        self.assertEqual(summary["repetitions"], [2, 2])
        self.assertIn("to a thread pool has no verdict: too few runs per cell for a 95% interval (the rule "
                      "needs 7)", "\n".join(bs.conclusions(summary)))
        cost = summary["offload_cost"]["event_loop"]["cpu"]["threads"]
        self.assertEqual((cost["cost_us"], cost["low_us"]), (11, None))


class SummaryTest(unittest.TestCase):
    def setUp(self):
        self.data = stall_results()
        self.summary = stall_summary()

    def test_series_layout(self):
        point = self.summary["series"]["event_loop"]["sleep"]["threads"]["100"]["1"]["100000"]
        self.assertEqual(point["light_p99_us"], 95)
        self.assertEqual(point["light_p999_us"], 95 * 1.5)
        self.assertEqual(point["heavy_p50_us"], 100000 + 71)
        self.assertEqual(list(self.summary["series"]), ["event_loop", "fibers", "thread_pool"])
        self.assertEqual(list(self.summary["series"]["event_loop"]["cpu"]), ["inline", "threads", "processes"])
        self.assertEqual(list(self.summary["series"]["event_loop"]["cpu"]["inline"]["100"]["1"]),
                         [str(w) for w in (bs.FLOOR_WORK_US,) + WORK])
        self.assertEqual(self.summary["work_sizes"], [bs.FLOOR_WORK_US, *WORK])
        self.assertEqual(point["repetitions"], len(SCALE))
        self.assertEqual(point["runs"]["light_p99_us"], [95 * s for s in SCALE])

    def test_cpu_waits_hold_cells_against_the_floor_the_rule_uses(self):
        # Four of nine floor runs hiccup and the rest spread: their median is 60 µs,
        # floor_us 50. Offloaded at 70 µs less the same share of hiccups, the cell is
        # lifted above 1.25 x 50, though not above 1.25 x 60.
        floor = [40, 45, 50, 55, 60, 300, 300, 300, 300]
        offloaded = [68, 69, 70, 71, 72, 900, 900, 900, 900]
        self.data["benchmarks"] = (
            stall_entries("event_loop", "cpu", "inline", bs.FLOOR_WORK_US, None, p99_runs=floor)
            + stall_entries("event_loop", "cpu", "inline", 1000, 1100)
            + stall_entries("event_loop", "cpu", "processes", 1000, None, p99_runs=offloaded, cpu_wait_share=0.04))
        waits = summarize(self.data)["cpu_waits"]["event_loop"]["cpu"]["processes"]
        self.assertEqual((waits["floor_p99_us"], waits["explained_us"], waits["unexplained_us"]), (50, [1000], []))

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
        self.assertEqual(bs._count_problem({"scheduled": 1, "completed": float("nan"), "failed": None}),
                         "no failed counter; completed is nan")
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
        self.checks = stall_summary()["checks"]

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
        self.assertNotIn("thread_pool", stall_summary()["checks"]["stall_visible"])

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
        self.assertIn("| inline stall visible (event_loop, kind:cpu) | – | no heavy_every_us counter in the data "
                      "| – not computed |", "\n".join(bs._checks_table(summary)))

    def test_sleep_offload_bounded(self):
        check = self.checks["sleep_offload_bounded"]["event_loop"]
        self.assertTrue(check["held"])
        self.assertEqual(check["limit_us"], 1000)  # max(1 ms, 2 x 4 us)
        self.assertEqual(check["worst_p99_us"], 90)  # at 10 ms: 100 ms is past CHECK_UP_TO_US
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
        self.assertEqual(bs._cost_row("event_loop", "threads", check),
                         ("threads offload cost (event_loop)", "≤ 1.5× the thread round trip across cores (20 µs)",
                          "3 µs, 0.15×; 0.75× the unpinned one (4 µs); 0.30× the pool's (10 µs)", True))

    def test_offload_cost_above_tolerance_fails(self):
        self.assertTrue(bs._cost_vs_rtt(30, "threads", self.CALIBRATION)["held"])  # 1.5 x 20
        check = bs._cost_vs_rtt(32, "threads", self.CALIBRATION)  # 1.6 x 20
        self.assertFalse(check["held"])
        self.assertAlmostEqual(check["ratio"], 1.6)

    def test_offload_cost_falls_back_to_the_unpinned_round_trip(self):
        check = bs._cost_vs_rtt(7, "threads", dict(self.CALIBRATION, thread_rtt_cross_core_us=None))
        self.assertEqual((check["reference"], check["reference_us"]), ("thread_rtt_us", 4))
        self.assertFalse(check["held"])  # 1.75 x 4
        self.assertEqual(bs._cost_row("event_loop", "threads", check)[1:],
                         ("≤ 1.5× the thread round trip (4 µs)", "7 µs, 1.75×; 0.70× the pool's (10 µs)", False))
        data = stall_results()
        del data["context"]["calib_pipe_rtt_cross_core_us"]
        processes = summarize(data)["checks"]["offload_cost_vs_rtt"]["event_loop"]["processes"]
        self.assertEqual((processes["reference"], processes["reference_us"]), ("pipe_rtt_us", 10))

    def test_offload_cost_without_round_trips(self):
        self.assertIsNone(bs._cost_vs_rtt(7, "processes", self.CALIBRATION))
        self.assertIsNone(bs._cost_vs_rtt(None, "threads", self.CALIBRATION))
        check = bs._cost_vs_rtt(7, "threads", {"thread_rtt_cross_core_us": 20})
        self.assertEqual((check["same_core_us"], check["pool_ratio"]), (None, None))
        self.assertEqual(bs._cost_row("event_loop", "threads", check)[2], "7 µs, 0.35×")


class ConclusionsTest(unittest.TestCase):
    def setUp(self):
        self.text = "\n".join(bs.conclusions(stall_summary()))

    def test_break_even_sentences(self):
        self.assertIn("Offloading CPU work from the event loop to a thread pool pays off from 100 µs of work "
                      "(interval 100 µs); to a process pool it pays off from 1 ms of work (interval 1 ms).",
                      self.text)
        self.assertIn("Offloading a blocking call from the event loop to a thread pool pays off from 100 µs of "
                      "work (interval 100 µs); to a process pool it never pays off up to 100 ms "
                      "(the largest work measured).", self.text)
        self.assertIn("Offloading CPU work from fibers on one thread to a thread pool pays off from 10 ms of work",
                      self.text)

    def test_cost_sentences_beside_calibration(self):
        self.assertIn("One offload from the event loop adds +11 µs (+8 µs to +14 µs) to threads and +54 µs (+51 µs to +57 µs) "
                      "to processes to a heavy request's p50 (kind:cpu, 1 µs of work).", self.text)
        self.assertIn("One offload from fibers on one thread adds +11 µs", self.text)
        self.assertEqual(self.text.count("Calibrated on this machine for comparison: thread round trip 4 µs, "
                                         "thread round trip across cores 20 µs, pipe round trip 10 µs, "
                                         "pipe round trip across cores 30 µs, thread pool round trip 10 µs "
                                         "and process pool round trip 50 µs."), 1)

    def test_cpu_wait_explains_a_lifted_p99(self):
        # processes at 100 µs (400) and from 1 ms (90-110) sits above 1.25 x the floor, with
        # 4% of the run waiting for a CPU; threads from 1 ms too (70-90), but waiting 0.1%:
        # only the first is the loop waiting for a CPU.
        self.assertIn("Offloaded to processes (event_loop, kind:cpu), light p99 stayed above 1.25× the floor "
                      "(50 µs) at 4 sizes; at 4 of them, 100 µs–100 ms, the threads serving light requests waited "
                      "for a CPU 4% of the run: there the stall is the loop waiting for a CPU, not the offload's "
                      "own cost.", self.text)
        self.assertNotIn("Offloaded to threads", self.text)  # its p99 is the offload's own doing

    def test_checks_table(self):
        table = "\n".join(bs._checks_table(stall_summary()))
        self.assertIn("| check | limit | measured | held |", table)
        limit = "light p99 ≥ 0.95× predicted; light max ≥ W − 10 ms (one light interval)"
        self.assertIn(f"| inline stall visible (event_loop, kind:cpu) | {limit} | ", table)
        self.assertIn(f"| inline stall visible (fibers, kind:cpu) | {limit} | lowest light p99 900 µs at 1 ms, 0.94× "
                      "predicted; lowest light max 1.8 ms at 1 ms, 1.80× the stall | ✗ did not hold |", table)
        self.assertIn("| threads offload bounds kind:sleep (event_loop) | light p99 < 1 ms up to 10 ms | worst 90 µs "
                      "at 10 ms | ✓ held |", table)
        self.assertIn("| threads offload bounds kind:sleep (thread_pool with 2 workers) | light p99 < 1 ms up to 1 ms "
                      "only (of 10 ms) |", table)
        self.assertNotIn("inline stall visible (thread_pool", table)
        self.assertIn("| threads offload cost (event_loop) | ≤ 1.5× the thread round trip across cores (20 µs) | "
                      "11 µs, 0.55×; 2.75× the unpinned one (4 µs); 1.10× the pool's (10 µs) | ✓ held |", table)
        self.assertIn("| processes offload cost (event_loop) | ≤ 1.5× the pipe round trip across cores (30 µs) | "
                      "54 µs, 1.80×; 5.40× the unpinned one (10 µs); 1.08× the pool's (50 µs) | ✗ did not hold |",
                      table)
        self.assertNotIn("Check,", self.text)  # the checks are in the table, not among the conclusions

    def test_failed_requests_counted(self):
        self.assertIn("1 request failed across 1 run (thread_pool/sleep/threads)", self.text)

    def test_format_us(self):
        self.assertEqual([units.format_us(v) for v in (3, 1000, 100000, 2.5e6, 0.5, 999.7, 999999)],
                         ["3 µs", "1 ms", "100 ms", "2.5 s", "0.5 µs", "1 ms", "1 s"])
        self.assertEqual([units.format_bytes(v) for v in (64, 1000, 1024, 24723456)],
                         ["64 B", "1000 B", "1 KiB", "23.6 MiB"])
        self.assertEqual([units.format_range_us(*r) for r in ((1000, 2000), (50, 1000), (20, 20))],
                         ["1–2 ms", "50 µs–1 ms", "20 µs"])
        # An offload cost of 1.22 ms once read "+1.22e+03 µs".
        self.assertEqual([units.format_signed_us(v) for v in (33.2, 1220, -5, 0)],
                         ["+33.2 µs", "+1.22 ms", "-5 µs", "+0 µs"])


class OutputTest(ReportOutput, unittest.TestCase):
    """Plots and the report section through report.generate, as scripts/plot runs it."""

    results = staticmethod(stall_results)

    def test_plots_written(self):
        stems = [f"blocking_stall_crossover_{m}_{k}" for m, k in
                 (("event_loop", "cpu"), ("event_loop", "sleep"), ("fibers", "cpu"), ("thread_pool", "sleep"))]
        stems += [f"blocking_stall_trade_{m}" for m in ("event_loop", "fibers", "thread_pool")]
        self.assert_plots_written(stems)
        self.assertEqual(len(list((self.dir / "plots").iterdir())), 2 * len(stems))

    def test_crossover_has_reference_lines_floor_and_wins(self):
        self.assert_labels("blocking_stall_crossover_event_loop_cpu", (
            "thread round trip across cores 20 µs", "pipe round trip across cores 30 µs",
            "thread pool round trip 10 µs", "process pool round trip 50 µs",
            "threads pays off from 100 µs (100 µs)", "processes pays off from 1 ms (1 ms)",
            "floor, no work (middle half): 50–51 µs", "threads wins (rule above)"))
        svg = (self.dir / "plots" / "blocking_stall_crossover_event_loop_cpu.svg").read_text()
        # The unpinned round trips only stand in for absent cross-core ones.
        self.assertNotIn("thread round trip 4 µs", svg)
        self.assertNotIn("pipe round trip 10 µs", svg)

    def test_trade_plot_shows_both_sides(self):
        self.assert_labels("blocking_stall_trade_event_loop", (
            "threads, kind:cpu", "processes, kind:sleep", "0.8: a win lies wholly below",
            "what the light requests gain", "what each heavy request pays"))

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
            self.assertIn(f"<!-- {label} -->", svg)
        self.assertNotIn("across cores", svg)

    def test_summary_json(self):
        summary = json.loads((self.dir / "summary.json").read_text())["workloads"]["blocking_stall"]
        self.assertEqual(summary["break_even_us"]["event_loop"]["cpu"], {"threads": 100, "processes": 1000})
        self.assertEqual(summary["break_even"]["event_loop"]["cpu"]["processes"]["verdicts"]["100"], "loss")
        self.assertEqual(summary["offload_cost_us"]["event_loop"]["threads"], 11)

    def test_report_section(self):
        for expected in ("## Answers", "- **When does offloading from the event loop pay off?** CPU work: to threads "
                         "from 100 µs (100 µs), to processes from 1 ms (1 ms); a blocking call: to threads from 100 µs "
                         "(100 µs), to processes never (to 100 ms) (break-even in work per heavy request; interval "
                         "in brackets). [→](#blocking_stall-a-blocking-call-among-light-requests)",
                         "- **What does one offload cost?** from the event loop, +11 µs (+8 µs to +14 µs) to threads and "
                         "+54 µs (+51 µs to +57 µs) to processes; from fibers on one thread, +11 µs (+8 µs to +14 µs) to threads",
                         "## blocking_stall", "**The rule.**",
                         "| event_loop | cpu | 100/s | 1 | 100 µs (100 µs) | 1 ms (1 ms) | +11 µs (+8 µs to +14 µs) "
                         "| +54 µs (+51 µs to +57 µs) |",
                         "| event_loop | sleep | 100/s | 1 | 100 µs (100 µs) | never (to 100 ms) |",
                         "| fibers | cpu | 100/s | 1 | 10 ms (10 ms) | – | +11 µs (+8 µs to +14 µs) | – |",
                         "| event_loop | cpu | processes | · | · | ✗ | ✓ | ✓ | ✓ |",
                         "| model | kind | offload | floor | 1 µs |",
                         "| event_loop | cpu | processes | – | 50 µs | 30 µs | 400 µs | 90 µs | 100 µs | 110 µs |",
                         "| event_loop | cpu | processes | – | 4% | 4% | 4% | 4% | 4% | 4% |",
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



class PeerTest(unittest.TestCase):
    """Peers sit in the same series as the C++ models; Go, with no offload, has its
    own table and answer; the checks on concbench's pools leave peers out."""

    def setUp(self):
        data = stall_results()
        data["benchmarks"] += (
            sweep("peer_asyncio", "cpu", "inline", (50, 52, 150, 1100, 11000, 110000))
            + sweep("peer_asyncio", "cpu", "processes", (900, 900, 900, 900, 900, 900))
            # Go: one P stalls like a loop; two keep light requests near the floor.
            + sweep("peer_go", "cpu", "inline", (50, 60, 150, 1100, 11000, 110000), workers=1)
            + sweep("peer_go", "cpu", "inline", (50, 50, 55, 60, 70, 75), workers=2))
        self.summary = summarize(data)

    def test_peers_follow_the_cpp_models(self):
        self.assertEqual(list(self.summary["series"]),
                         ["event_loop", "fibers", "thread_pool", "peer_asyncio", "peer_go"])

    def test_a_peers_break_even_uses_the_same_rule(self):
        found = self.summary["break_even"]["peer_asyncio"]["cpu"]["processes"]
        self.assertEqual(found["from_us"], 10000)
        self.assertEqual(self.summary["break_even"]["peer_go"]["cpu"]["threads"]["status"], "missing")

    def test_asyncio_answers_beside_the_event_loop_and_go_by_its_rise(self):
        lines = bs.answers(self.summary)
        models = [line for line in lines if "When does offloading from" in line]
        self.assertIn("the event loop", models[0])
        self.assertIn("Python asyncio", models[1])
        go = next(line for line in lines if "Go" in line)
        self.assertIn("CPU work (100 ms): 1.5× with GOMAXPROCS=2, 2.2e+03× with GOMAXPROCS=1", go)

    def test_go_table_has_a_row_per_gomaxprocs(self):
        table = "\n".join(bs._go_table(self.summary))
        self.assertIn("| cpu | 1 | 50 µs | 50 µs | 60 µs |", table)
        self.assertIn("| cpu | 2 | 50 µs | 50 µs | 50 µs |", table)
        self.assertNotIn("peer_go", "\n".join(bs._break_even_table(self.summary)))

    def test_checks_leave_peers_out(self):
        checks = self.summary["checks"]
        self.assertNotIn("peer_asyncio", checks["offload_cost_vs_rtt"])
        self.assertNotIn("peer_go", checks["stall_visible"])


if __name__ == "__main__":
    unittest.main()
