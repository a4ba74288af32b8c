import unittest

from synthetic import MB, cpu_hash_name, cpu_hash_results

import results as res
from workloads import cpu_hash


def summarize(data):
    return cpu_hash.summarize(res.reduce_runs(data["benchmarks"]), data)


class SummaryTest(unittest.TestCase):
    """Expected numbers worked out by hand from synthetic.cpu_hash_results()."""

    def setUp(self):
        self.data = cpu_hash_results()
        self.summary = summarize(self.data)

    def point(self, series, block, workers):
        return self.summary["series"][series][str(block)][str(workers)]

    def test_answer_names_the_fastest_at_the_most_workers(self):
        # process_pool ship:seed reaches 400 MB/s at 16 KiB with 2 workers: 2x serial's 200.
        [line] = cpu_hash.answers(self.summary)
        self.assertEqual(line, "**Which model scales best on CPU work?** process_pool ship:seed: 400 MB/s with 2 "
                               "workers at 16 KiB blocks, 2.00× serial, an efficiency of 1.00. "
                               "[→](#cpu_hash-sha-256-over-blocks)")

    def test_speedup_and_efficiency_against_serial_at_same_block(self):
        p = self.point("thread_pool", 16384, 2)  # 380 / 200
        self.assertAlmostEqual(p["speedup"], 1.9)
        self.assertAlmostEqual(p["efficiency"], 0.95)
        p = self.point("thread_pool", 1024, 2)  # 150 / 100
        self.assertAlmostEqual(p["speedup"], 1.5)
        self.assertAlmostEqual(p["efficiency"], 0.75)

    def test_best_grain_kept(self):
        self.assertEqual(self.point("thread_pool", 16384, 2)["bytes_per_s"], 380 * MB)

    def test_cpu_per_wall(self):
        self.assertAlmostEqual(self.point("thread_pool", 1024, 2)["cpu_per_wall"], 0.5)

    def test_ship_cost(self):
        self.assertAlmostEqual(self.summary["ship_cost"]["16384"]["2"], 1 - 260 / 400)
        self.assertAlmostEqual(self.summary["ship_cost"]["1024"]["2"], 1 - 95 / 100)

    def test_serial_and_openssl(self):
        self.assertEqual(self.summary["serial_bytes_per_s"], {"1024": 100 * MB, "16384": 200 * MB})
        self.assertAlmostEqual(self.summary["vs_openssl_16k"], 0.8)

    def test_errors_listed_not_measured(self):
        self.assertEqual([e["message"] for e in self.summary["errors"]], ["result differs from reference"])
        self.assertNotIn("fibers_mt", self.summary["series"])

    def test_max_workers_and_scaling_block(self):
        self.assertEqual(self.summary["max_workers"]["thread_pool"], 2)
        self.assertEqual(self.summary["max_workers"]["event_loop"], 1)
        self.assertEqual(self.summary["scaling_block"], 16384)

    def test_without_serial_speedup_is_null(self):
        self.data["benchmarks"] = [b for b in self.data["benchmarks"] if "/serial/" not in b["name"]]
        self.data["peers"] = {"openssl_sha256_16k_bytes_per_s": None}
        summary = summarize(self.data)
        self.assertIsNone(summary["series"]["thread_pool"]["16384"]["2"]["speedup"])
        self.assertIsNone(summary["vs_openssl_16k"])
        cpu_hash.conclusions(summary)  # must not fail on missing numbers


class ProcessCpuTest(unittest.TestCase):
    """Where process_pool's CPU goes: hashing in the workers against threads."""

    def summary(self, seed_rate, worker_cpus):
        data = cpu_hash_results()
        for b in data["benchmarks"]:
            if b["name"] == cpu_hash_name("process_pool", 16384, 2, ship="seed"):
                b.update(bytes_per_second=seed_rate * MB, cpu_time=100.0, worker_cpus=worker_cpus)
            if b["name"] == cpu_hash_name("thread_pool", 16384, 2):
                b.update(cpu_time=2000.0)  # both threads hashing: 190 MB/s per CPU second, 0.95 serial's
        return summarize(data)

    def test_split_of_the_cpus(self):
        p = self.summary(360, 1.8)["series"]["process_pool ship:seed"]["16384"]["2"]
        self.assertAlmostEqual(p["hashing_cpus"], 1.8)
        self.assertAlmostEqual(p["parent_cpus"], 0.1)
        self.assertAlmostEqual(p["bytes_per_cpu_s"], 200 * MB)
        self.assertAlmostEqual(p["per_cpu_vs_serial"], 1.0)

    def test_a_process_as_fast_as_a_thread_leaves_the_hand_off(self):
        [line] = cpu_hash._process_cpu(self.summary(360, 1.8))
        self.assertIn("the workers hash at 1.00× serial's rate per CPU second and are busy 1.80 of 2 CPUs", line)
        self.assertIn("the pool's thread in the parent, woken by each batch of replies, uses 0.10 CPUs", line)
        self.assertIn("thread_pool's threads hash at 0.95× and are busy 2.00 CPUs", line)
        self.assertIn("So a process hashes as fast as a thread, and the shortfall is the hand-off", line)

    def test_slower_workers_are_named(self):
        [line] = cpu_hash._process_cpu(self.summary(320, 1.8))  # 0.89 serial's per CPU second
        self.assertIn("So the workers hash 6% slower per CPU second than threads", line)

    def test_nothing_without_worker_cpus(self):
        self.assertEqual(cpu_hash._process_cpu(summarize(cpu_hash_results())), [])


class ConclusionsTest(unittest.TestCase):
    def test_sentences_follow_the_numbers(self):
        text = "\n".join(cpu_hash.conclusions(summarize(cpu_hash_results())))
        self.assertIn("thread_pool scales: at ≥16 KiB blocks it reaches 0.95× the ideal with 2 workers", text)
        self.assertIn("process_pool ship:bytes falls short of linear scaling", text)
        self.assertIn("event_loop runs on one thread: within 1% of serial", text)
        self.assertIn("costs 35% of the throughput at 16 KiB blocks and 5% of the throughput at 1 KiB", text)
        self.assertIn("0.80× `openssl speed`", text)

    def test_scaling_block_falls_back(self):
        self.assertEqual(cpu_hash._scaling_block([64, 1024, 1 << 20]), 1 << 20)
        self.assertEqual(cpu_hash._scaling_block([64, 1024]), 1024)
        self.assertIsNone(cpu_hash._scaling_block([]))


if __name__ == "__main__":
    unittest.main()
