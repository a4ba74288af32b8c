"""Distribution-free statistics for repeated runs of one cell: an interval for a
median, the Mann–Whitney U test, and the Hodges–Lehmann shift between two samples
with its confidence interval.

Repeated benchmark runs are few (5 or so) and not normal (a hiccup of the machine
makes one run far slower), so everything here rests on ranks and order statistics:
exact for small samples, with no assumption about the shape of the distribution.
Debian 12 cannot install scipy beside Boost 1.81, hence numpy alone."""

import math
from functools import lru_cache

import numpy as np

CONFIDENCE = 0.95
# Above this many values per sample the exact U distribution gives way to the
# normal approximation (the exact one is still cheap there; the two agree closely).
EXACT_UP_TO = 50


def median(values):
    """The median, by sorting: the samples here are small, and numpy's call costs more
    than the sort."""
    x = sorted(float(v) for v in values)
    n = len(x)
    if n == 0:
        raise ValueError("median: no values")
    return x[n // 2] if n % 2 else (x[n // 2 - 1] + x[n // 2]) / 2


# ---------------------------------------------------------------- one sample

def median_interval(values, confidence=CONFIDENCE):
    """(low, high, coverage) for the median of the distribution the values come from:
    the order statistics x(k) and x(n+1-k) with the largest k whose coverage,
    1 - 2 P(Binomial(n, 1/2) < k), is at least `confidence`. Too few values for that
    (5 or fewer at 95%) give (min, max) and the lower coverage they have."""
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    if n == 0:
        raise ValueError("median_interval: no values")
    below = np.cumsum([math.comb(n, i) for i in range(n + 1)]) / 2.0 ** n  # P(Bin <= i)
    k = 1
    while k + 1 <= (n + 1) // 2 and 1 - 2 * below[k] >= confidence - 1e-12:  # k + 1 keeps P(Bin < k+1)
        k += 1
    coverage = 1 - 2 * below[k - 1] if n > 1 else 0.0
    return float(x[k - 1]), float(x[n - k]), float(coverage)


# ---------------------------------------------------------------- two samples

@lru_cache(maxsize=None)
def u_counts(n, m):
    """How many of the C(n+m, n) orderings of two untied samples of sizes n and m give
    U = 0, 1, ..., n*m (U: pairs with the first sample's value above the second's)."""
    # counts[i][j] is the distribution for sizes i and j, built up by adding one value
    # at a time: the new largest value belongs to the first sample (adding j to U) or
    # to the second (adding nothing).
    counts = [[np.zeros(1, dtype=object) for _ in range(m + 1)] for _ in range(n + 1)]
    for i in range(n + 1):
        for j in range(m + 1):
            if i == 0 or j == 0:
                counts[i][j] = np.ones(1, dtype=object)
                continue
            out = np.zeros(i * j + 1, dtype=object)
            top_first = counts[i - 1][j]
            out[j:j + len(top_first)] += top_first
            top_second = counts[i][j - 1]
            out[:len(top_second)] += top_second
            counts[i][j] = out
    return tuple(int(c) for c in counts[n][m])


def u_cdf(u, n, m):
    """P(U <= u) for untied samples of sizes n and m under the null hypothesis."""
    counts = u_counts(n, m)
    if u < 0:
        return 0.0
    return sum(counts[:int(math.floor(u)) + 1]) / math.comb(n + m, n)


def u_statistic(x, y):
    """U of x against y: pairs (x_i, y_j) with x_i > y_j, ties counting one half."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    diff = x[:, None] - y[None, :]
    return float((diff > 0).sum() + 0.5 * (diff == 0).sum())


def mann_whitney(x, y):
    """(U, p): U of x against y and the two-sided p-value of the hypothesis that both
    come from one distribution. Exact where both samples have at most EXACT_UP_TO
    values and no value is shared; otherwise the normal approximation with the tie
    correction of the variance and a continuity correction (as scipy's, which Google Benchmark's
    tools/compare.py calls)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n, m = len(x), len(y)
    if n == 0 or m == 0:
        raise ValueError("mann_whitney: a sample is empty")
    u = u_statistic(x, y)
    both = np.concatenate([x, y])
    tied = len(np.unique(both)) < len(both)
    if not tied and n <= EXACT_UP_TO and m <= EXACT_UP_TO:
        low = min(u, n * m - u)
        return u, min(1.0, 2 * u_cdf(low, n, m))
    _, tie_sizes = np.unique(both, return_counts=True)
    total = n + m
    variance = n * m / 12 * ((total + 1) - float((tie_sizes ** 3 - tie_sizes).sum()) / (total * (total - 1)))
    if variance <= 0:  # every value the same
        return u, 1.0
    z = (abs(u - n * m / 2) - 0.5) / math.sqrt(variance)
    return u, min(1.0, math.erfc(max(z, 0) / math.sqrt(2)))


@lru_cache(maxsize=None)
def _critical_rank(n, m, confidence):
    """The largest k with P(U <= k-1) <= (1 - confidence) / 2, or 0 if none: the pairwise
    differences ranked k-th from either end bound the shift's interval."""
    alpha = (1 - confidence) / 2 + 1e-12  # (1 - 0.9) / 2 falls just short of 0.05 in floating point
    if n <= EXACT_UP_TO and m <= EXACT_UP_TO:
        k = 0
        while k < n * m and u_cdf(k, n, m) <= alpha:
            k += 1
        return k
    z = _normal_quantile(1 - alpha)
    return max(0, int(math.floor(n * m / 2 - z * math.sqrt(n * m * (n + m + 1) / 12))))


def _normal_quantile(p):
    """Inverse of the standard normal CDF, by bisection on erfc (exact to 1e-12)."""
    low, high = -10.0, 10.0
    for _ in range(100):
        mid = (low + high) / 2
        if 0.5 * math.erfc(-mid / math.sqrt(2)) < p:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def min_runs(confidence=CONFIDENCE):
    """The fewest values in each of two samples that give shift_interval an interval."""
    n = 1
    while _critical_rank(n, n, confidence) == 0:
        n += 1
    return n


def shift_interval(x, y, confidence=CONFIDENCE):
    """The shift of x against y: the Hodges–Lehmann estimate (the median of every
    difference x_i - y_j) and its distribution-free interval, the differences ranked
    k-th from either end for the k the U distribution gives. Returns
    {estimate, low, high, coverage}; low, high and coverage are None where the samples
    are too small for any interval at that confidence (3 values each at 95%)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n, m = len(x), len(y)
    if n == 0 or m == 0:
        raise ValueError("shift_interval: a sample is empty")
    diffs = np.sort((x[:, None] - y[None, :]).ravel())
    out = {"estimate": float(np.median(diffs)), "low": None, "high": None, "coverage": None}
    k = _critical_rank(n, m, confidence)
    if k > 0:
        exact = n <= EXACT_UP_TO and m <= EXACT_UP_TO
        out.update(low=float(diffs[k - 1]), high=float(diffs[n * m - k]),
                   coverage=float(1 - 2 * u_cdf(k - 1, n, m)) if exact else confidence)
    return out


def ratio_interval(x, y, confidence=CONFIDENCE):
    """The ratio of x to y as shift_interval of their logarithms, exponentiated: the
    estimate is the median of every ratio x_i / y_j (with an even count of pairs, the
    geometric mean of the middle two). Values must be positive."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if (x <= 0).any() or (y <= 0).any():
        raise ValueError("ratio_interval: values must be positive")
    shift = shift_interval(np.log(x), np.log(y), confidence)
    return {key: (math.exp(value) if key != "coverage" and value is not None else value)
            for key, value in shift.items()}
