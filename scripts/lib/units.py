"""One unit style for every report, plot and comparison: times in µs, ms and s,
sizes in B, KiB, MiB and GiB, rates with k, M and G; three significant figures."""


def format_us(us):
    """3 -> '3 µs', 1000 -> '1 ms', 100000 -> '100 ms', 2.5e6 -> '2.5 s'."""
    if us is None:
        return "n/a"
    for unit, size in (("s", 1e6), ("ms", 1e3)):
        if abs(us) >= size:
            return f"{us / size:.3g} {unit}"
    return f"{us:.3g} µs"


def format_range_us(low, high):
    """'1–2 ms', '50 µs–1 ms': the unit once where both ends share it."""
    a, b = format_us(low), format_us(high)
    if a == b:
        return a
    unit_a, unit_b = a.rsplit(" ", 1)[1], b.rsplit(" ", 1)[1]
    return f"{a.rsplit(' ', 1)[0]}–{b}" if unit_a == unit_b else f"{a}–{b}"


def format_bytes(n):
    """64 -> '64 B', 16384 -> '16 KiB', 24723456 -> '23.6 MiB'."""
    if n is None:
        return "n/a"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.3g} B"


def format_per_s(per_s):
    """Events per second: 46000 -> '46k/s', 17100000 -> '17.1M/s'."""
    if per_s is None:
        return "n/a"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(per_s) >= size:
            return f"{per_s / size:.3g}{unit}/s"
    return f"{per_s:.3g}/s"


def format_byte_rate(bytes_per_s):
    """Bytes per second in decimal units, as openssl speed gives them: '1.13 GB/s'."""
    if bytes_per_s is None:
        return "n/a"
    for unit, size in (("GB/s", 1e9), ("MB/s", 1e6), ("kB/s", 1e3)):
        if abs(bytes_per_s) >= size:
            return f"{bytes_per_s / size:.3g} {unit}"
    return f"{bytes_per_s:.3g} B/s"
