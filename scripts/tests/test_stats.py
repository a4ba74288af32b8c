import math
import unittest

import synthetic  # noqa: F401  (puts scripts/lib on the path)
import stats

# Critical values of U for a two-sided test at 5% (the largest u with P(U <= u) <= 0.025),
# from the published table (Mann & Whitney 1947; reprinted e.g. in Siegel & Castellan,
# Nonparametric Statistics, Table J).
PUBLISHED_CRITICAL_U = {(4, 4): 0, (5, 5): 2, (6, 6): 5, (8, 8): 13, (10, 10): 23, (20, 20): 127, (5, 10): 8}


class MannWhitneyTest(unittest.TestCase):
    def test_critical_values_match_the_published_table(self):
        for (n, m), critical in PUBLISHED_CRITICAL_U.items():
            self.assertLessEqual(stats.u_cdf(critical, n, m), 0.025, (n, m))
            self.assertGreater(stats.u_cdf(critical + 1, n, m), 0.025, (n, m))
        self.assertEqual(stats.u_cdf(-1, 3, 3), 0)
        self.assertEqual(stats.u_cdf(9, 3, 3), 1)

    def test_textbook_example(self):
        # Hollander & Wolfe, Nonparametric Statistical Methods, 2nd ed., Example 4.1: the
        # permeability of the membranes, at term (x) and at 12-26 weeks (y). U of y against
        # x is 35 of 50, the one-sided P(U >= 35) 0.127.
        x = [0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46]
        y = [1.15, 0.88, 0.90, 0.74, 1.21]
        u, p = stats.mann_whitney(y, x)
        self.assertEqual(u, 15)  # pairs with y above x; x above y: 35
        self.assertEqual(stats.u_statistic(x, y), 35)
        self.assertAlmostEqual(1 - stats.u_cdf(34, 10, 5), 0.1272, places=4)
        self.assertAlmostEqual(p, 2 * 0.1272, places=3)

    def test_separated_samples(self):
        self.assertEqual(stats.mann_whitney([1, 2, 3, 4], [5, 6, 7, 8]), (0, 2 / 70))
        self.assertEqual(stats.mann_whitney([5, 6, 7], [1, 2, 3])[1], 2 / 20)

    def test_normal_approximation_agrees_with_the_exact_distribution(self):
        x, y = list(range(0, 60, 2)), list(range(5, 65, 2))  # 30 each, untied
        _, exact = stats.mann_whitney(x, y)
        stats_exact_up_to, stats.EXACT_UP_TO = stats.EXACT_UP_TO, 10
        try:
            _, normal = stats.mann_whitney(x, y)
        finally:
            stats.EXACT_UP_TO = stats_exact_up_to
        self.assertAlmostEqual(exact, normal, delta=0.01)

    def test_ties_use_the_corrected_normal_approximation(self):
        u, p = stats.mann_whitney([1, 1, 2, 2], [1, 2, 2, 3])
        self.assertEqual(u, 5)
        self.assertGreater(p, 0.3)
        self.assertEqual(stats.mann_whitney([4, 4], [4, 4]), (2, 1.0))

    def test_empty_sample_is_an_error(self):
        with self.assertRaises(ValueError):
            stats.mann_whitney([], [1])


class IntervalTest(unittest.TestCase):
    def test_median(self):
        self.assertEqual(stats.median([3, 1, 2]), 2)
        self.assertEqual(stats.median([4, 1, 3, 2]), 2.5)  # the middle two's mean
        self.assertEqual(stats.median((x for x in [7.5])), 7.5)
        with self.assertRaises(ValueError):
            stats.median([])

    def test_median_interval_order_statistics(self):
        # n = 10: x(2) and x(9), coverage 1 - 2 x 11/1024 = 97.85%.
        low, high, coverage = stats.median_interval(range(1, 11))
        self.assertEqual((low, high), (2, 9))
        self.assertAlmostEqual(coverage, 1 - 2 * 11 / 1024)
        # n = 5 cannot reach 95%: the whole range, 93.75%.
        self.assertEqual(stats.median_interval([5, 1, 4, 2, 3]), (1, 5, 0.9375))

    def test_shift_of_a_shifted_sample(self):
        y = [10, 12, 15, 11, 13]
        shift = stats.shift_interval([v + 3 for v in y], y)
        self.assertEqual(shift["estimate"], 3)
        self.assertLess(shift["low"], 3)
        self.assertGreater(shift["high"], 3)
        # 5 and 5 at 95%: the 3rd pairwise difference from each end, coverage 1 - 2 x 4/252.
        self.assertAlmostEqual(shift["coverage"], 1 - 2 * 4 / 252)

    def test_too_few_values_give_an_estimate_without_interval(self):
        self.assertEqual(stats.min_runs(), 4)
        shift = stats.shift_interval([5, 6, 7], [1, 2, 3])
        self.assertEqual((shift["estimate"], shift["low"], shift["high"]), (4, None, None))
        self.assertIsNotNone(stats.shift_interval([5, 6, 7, 8], [1, 2, 3, 4])["low"])

    def test_ratio_interval(self):
        ratio = stats.ratio_interval([20, 22, 24, 26, 28], [10, 11, 12, 13, 14])
        self.assertAlmostEqual(ratio["estimate"], 2)
        self.assertLess(ratio["low"], 2)
        self.assertGreater(ratio["high"], 2)
        with self.assertRaises(ValueError):
            stats.ratio_interval([0, 1], [1, 2])

    def test_normal_quantile(self):
        self.assertAlmostEqual(stats._normal_quantile(0.975), 1.959964, places=5)
        self.assertTrue(math.isclose(stats._normal_quantile(0.5), 0, abs_tol=1e-9))


if __name__ == "__main__":
    unittest.main()
