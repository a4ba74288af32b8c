"""blocking_stall: an open-loop schedule of light and heavy requests on one event loop.

Light requests hash 64 bytes on the loop. A heavy request runs either inline on
the loop, stalling every request behind it, or off it the two ways asyncio's
docs recommend for blocking and CPU-bound work: asyncio.to_thread (the loop's
default executor, of --workers threads) or loop.run_in_executor with a ProcessPoolExecutor. Pools
are started and warmed, and the corpus loaded, before the clock starts.
Arrivals come from a feeder thread rather than loop.call_at: asyncio rounds its
timer waits up to whole milliseconds (the epoll timeout), which would add up to
1 ms to every request, so the thread sleeps until each arrival and hands it to
the loop with call_soon_threadsafe, waking it as a socket would.
"""
import asyncio
import ctypes
import functools
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

from main import block, cpu_work, le64, load_corpus, sleep_work

_worker_corpus = b""


def _init_worker(corpus_path):
    # A worker blocked on its task queue would outlive a peer that was killed: it
    # dies with its parent instead (PR_SET_PDEATHSIG, SIGKILL).
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    # Each worker loads its own copy once, so no request pickles 4 MiB.
    global _worker_corpus
    _worker_corpus = load_corpus(corpus_path)


def _cpu_in_worker(rid, cpu_bytes):
    return cpu_work(_worker_corpus, rid, cpu_bytes)


def _warm_worker():
    # Long enough that each worker of the pool takes one of these.
    time.sleep(0.02)
    return le64(block(_worker_corpus, 64, 0))


def read_schedule(path) -> list[tuple[int, bool]]:
    with open(path) as f:
        rows = (line.split() for line in f if line.strip())
        return [(int(arrival), heavy == "1") for arrival, heavy in rows]


def feed(loop, start, schedule, arrive, fed):
    try:
        for rid, (arrival, heavy) in enumerate(schedule):
            wait = start + arrival - time.perf_counter_ns()
            if wait > 0:
                time.sleep(wait / 1e9)
            loop.call_soon_threadsafe(arrive, rid, heavy)
    finally:
        loop.call_soon_threadsafe(fed.set_result, None)


async def run(args) -> list[str]:
    loop = asyncio.get_running_loop()
    schedule = read_schedule(args.schedule)
    corpus = load_corpus(args.corpus)
    pool = None
    if args.kind == "sleep":
        work = functools.partial(sleep_work, work_us=args.work_us)
    elif args.offload == "processes":
        work = functools.partial(_cpu_in_worker, cpu_bytes=args.cpu_bytes)
    else:
        work = functools.partial(cpu_work, corpus, cpu_bytes=args.cpu_bytes)

    if args.offload == "processes":
        pool = ProcessPoolExecutor(args.workers, initializer=_init_worker,
                                   initargs=(args.corpus,))
        warm = [loop.run_in_executor(pool, _warm_worker) for _ in range(args.workers)]
        await asyncio.gather(*warm)
    elif args.offload == "threads":
        # to_thread runs on the loop's default executor, here of --workers threads
        # like the other models' pools; a thread starts only when work finds none
        # idle, so occupy each once now.
        loop.set_default_executor(ThreadPoolExecutor(args.workers))
        await asyncio.gather(*(asyncio.to_thread(time.sleep, 0.02) for _ in range(args.workers)))

    lines, stalls = [], []

    def finish(rid, due, result):
        lines.append(f"request {rid} {time.perf_counter_ns() - due} {result}")

    async def offloaded(rid, due):
        try:
            if pool is None:
                result = await asyncio.to_thread(work, rid)
            else:
                result = await loop.run_in_executor(pool, work, rid)
        except Exception:
            result = "failed"
        finish(rid, due, result)

    def arrive(rid, heavy):
        due = start + schedule[rid][0]
        if not heavy:
            finish(rid, due, le64(block(corpus, 64, rid)))
        elif args.offload == "inline":
            began = time.perf_counter_ns()
            try:
                result = work(rid)
            except Exception:
                result = "failed"
            stalls.append(time.perf_counter_ns() - began)
            finish(rid, due, result)
        else:
            group.create_task(offloaded(rid, due))

    try:
        async with asyncio.TaskGroup() as group:
            fed = loop.create_future()
            start = time.perf_counter_ns()
            threading.Thread(target=feed, args=(loop, start, schedule, arrive, fed),
                             name="feeder", daemon=True).start()
            await fed
    finally:
        if pool is not None:
            pool.shutdown()
    return lines + [f"stall {ns}" for ns in stalls]
