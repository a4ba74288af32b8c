"""One unit style for every report, plot and comparison: times in µs, ms and s,
sizes in B, KiB, MiB and GiB, rates with k, M and G; three significant figures."""


def _scaled(value, ladder, smallest):
    """value in the largest unit of ladder [(suffix, size)] it reaches once rounded to
    3 significant figures (999.7 µs is '1 ms', not '1e+03 µs'), else in smallest."""
    if value is None:
        return "n/a"
    for suffix, size in ladder:
        if float(f"{abs(value) / size:.3g}") >= 1:
            return f"{value / size:.3g}{suffix}"
    text = f"{value:.3g}"
    return (f"{value:.0f}" if "e" in text else text) + smallest  # 1000 B, not 1e+03 B


def format_us(us):
    """3 -> '3 µs', 1000 -> '1 ms', 100000 -> '100 ms', 2.5e6 -> '2.5 s'."""
    return _scaled(us, ((" s", 1e6), (" ms", 1e3)), " µs")


def format_signed_us(us):
    """A difference: 33.2 -> '+33.2 µs', 1220 -> '+1.22 ms', -5 -> '-5 µs'."""
    return "n/a" if us is None else ("-" if us < 0 else "+") + format_us(abs(us))


def format_range_us(low, high):
    """'1–2 ms', '50 µs–1 ms': the unit once where both ends share it."""
    a, b = format_us(low), format_us(high)
    if a == b:
        return a
    unit_a, unit_b = a.rsplit(" ", 1)[1], b.rsplit(" ", 1)[1]
    return f"{a.rsplit(' ', 1)[0]}–{b}" if unit_a == unit_b else f"{a}–{b}"


def format_bytes(n):
    """64 -> '64 B', 16384 -> '16 KiB', 24723456 -> '23.6 MiB'."""
    return _scaled(n, ((" GiB", 1 << 30), (" MiB", 1 << 20), (" KiB", 1 << 10)), " B")


def format_per_s(per_s):
    """Events per second: 46000 -> '46k/s', 17100000 -> '17.1M/s'."""
    return _scaled(per_s, (("G/s", 1e9), ("M/s", 1e6), ("k/s", 1e3)), "/s")


def format_byte_rate(bytes_per_s):
    """Bytes per second in decimal units, as openssl speed gives them: '1.13 GB/s'."""
    return _scaled(bytes_per_s, ((" GB/s", 1e9), (" MB/s", 1e6), (" kB/s", 1e3)), " B/s")
