"""fan_out: N GETs with at most K in flight, as asyncio's own guidance has it.

One aiohttp ClientSession whose TCPConnector holds at most K keep-alive
connections; an asyncio.TaskGroup owns a task per request and an
asyncio.Semaphore(K) caps how many are in flight, and a request's latency
starts when it takes its slot. The slot is taken before the request's task is
created, so at most K tasks live at once: N tasks queued on the semaphore
would cost asyncio O(N^2) to cancel (each waiter leaves the semaphore's deque
by a linear remove, in the TaskGroup's unordered cancel order). Each request
runs under asyncio.timeout(T). With --group all a failed or timed-out request
raises inside the TaskGroup, which is asyncio's fail-fast: the group cancels
every request in flight and the loop that starts them. With --group settled
nothing raises and every request runs to its end.
"""
import asyncio
import hashlib
import time

import aiohttp


class RequestFailed(Exception):
    """Raised inside the group so that it cancels the rest (--group all)."""


class UnexpectedStatus(Exception):
    pass


async def run(args) -> list[str]:
    fail_fast = args.group == "all"
    url = f"http://{args.host}:{args.port}{args.target}"
    slots = asyncio.Semaphore(args.k)
    lines = [None] * args.n
    taken = [None] * args.n
    first_failure = None

    async def fetch(session, rid):
        nonlocal first_failure
        status = 0
        try:
            try:
                async with asyncio.timeout(args.timeout_ms / 1000):
                    async with session.get(f"{url}{rid}") as response:
                        status = response.status
                        body = await response.read()
            except TimeoutError:
                outcome = "timed_out"
            else:
                if status == 200:
                    outcome = "ok"
                elif status == 500:
                    outcome = "failed"
                else:
                    raise UnexpectedStatus(f"request {rid}: HTTP status {status}")
            ended = time.perf_counter_ns()
        except asyncio.CancelledError:
            latency = time.perf_counter_ns() - taken[rid]
            lines[rid] = f"request {rid} cancelled {status} {latency} -"
            raise
        finally:
            slots.release()
        digest = hashlib.sha256(body).hexdigest()[:16] if outcome == "ok" else "-"
        lines[rid] = f"request {rid} {outcome} {status} {ended - taken[rid]} {digest}"
        if fail_fast and outcome != "ok":
            if first_failure is None:
                first_failure = ended
            raise RequestFailed

    # asyncio.timeout bounds each request; aiohttp's own 5-minute default would
    # only be a second, hidden limit.
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=args.k),
        timeout=aiohttp.ClientTimeout(total=None),
    )
    async with session:
        try:
            async with asyncio.TaskGroup() as group:
                for rid in range(args.n):
                    await slots.acquire()
                    taken[rid] = time.perf_counter_ns()
                    group.create_task(fetch(session, rid))
        except* RequestFailed:
            pass  # the group has cancelled the rest, as --group all asks
        done = time.perf_counter_ns()

    for rid, line in enumerate(lines):
        if line is None:  # never started, or cancelled before its task first ran
            latency = "-" if taken[rid] is None else done - taken[rid]
            lines[rid] = f"request {rid} cancelled 0 {latency} -"
    lines.append(f"wall_ns {done - taken[0] if args.n else 0}")
    if first_failure is not None:
        lines.append(f"cancel_ns {done - first_failure}")
    return lines
