// blocking_stall: an open-loop stream of light requests, served on the event loop,
// with heavy ones mixed in that either run inline and hold the loop (every light
// request behind them waits: the stall Node's guidance warns about) or go to a pool
// of worker_threads and are awaited, which is the remedy it recommends. A feeder
// thread hands over arrivals, so lateness is the loop's, not the timer's. Everything
// (corpus, pool, feeder) is started and warmed before the clock starts.
import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { block, heavyCpu, heavySleep, intFlag, le64, readCorpus, reply, stringFlag, UsageError } from './main.mjs';

const workerUrl = new URL('./worker.mjs', import.meta.url);

function readSchedule(path) {
  const arrivals = [];
  const heavy = [];
  for (const [index, line] of readFileSync(path, 'utf8').split('\n').entries()) {
    if (line.trim() === '') continue;
    const match = /^\s*(\d+)\s+([01])\s*$/.exec(line);
    if (!match) throw new UsageError(`${path}:${index + 1}: expected 'ARRIVAL_NS HEAVY', got '${line}'`);
    arrivals.push(BigInt(match[1]));
    heavy.push(match[2] === '1');
  }
  return { arrivals, heavy };
}

// A fixed pool: a task goes to an idle worker, or waits in order for the next one.
function startPool(size, corpus, onError) {
  const idle = [];
  const queue = [];
  const dispatch = () => {
    while (idle.length > 0 && queue.length > 0) {
      const worker = idle.pop();
      worker.job = queue.shift();
      worker.postMessage(worker.job.task);
    }
  };
  const workers = Array.from({ length: size }, () => {
    const worker = new Worker(workerUrl, { workerData: { role: 'offload', corpus } });
    worker.on('message', ({ result, error }) => {
      const { resolve, reject } = worker.job;
      worker.job = null;
      idle.push(worker);
      dispatch();
      if (error === undefined) resolve(result);
      else reject(new Error(error));
    });
    // A worker that dies takes its task with it: the run is void.
    worker.on('error', onError);
    idle.push(worker);
    return worker;
  });
  return {
    run: (task) =>
      new Promise((resolve, reject) => {
        queue.push({ task, resolve, reject });
        dispatch();
      }),
    close: () => Promise.all(workers.map((w) => w.terminate())),
  };
}

// Resolves once the feeder waits on `clock`; startClock() then sets the start time
// and wakes it.
function startFeeder(arrivals) {
  const clock = new SharedArrayBuffer(16);
  const feeder = new Worker(workerUrl, { workerData: { role: 'feeder', arrivals, clock } });
  const startClock = () => {
    const start = process.hrtime.bigint();
    new BigInt64Array(clock, 8, 1)[0] = start;
    const flag = new Int32Array(clock, 0, 1);
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
    return start;
  };
  return new Promise((resolve, reject) => {
    feeder.once('error', reject);
    feeder.once('message', () => resolve({ feeder, startClock }));
  });
}

export async function blockingStall(values) {
  const kind = stringFlag(values, 'kind', ['cpu', 'sleep']);
  const offload = stringFlag(values, 'offload', ['inline', 'threads', 'processes']);
  if (offload === 'processes') throw new UsageError('--offload processes: the Node peer offloads to worker_threads only');
  const workUs = intFlag(values, 'work-us');
  const cpuBytes = intFlag(values, 'cpu-bytes', { min: kind === 'cpu' ? 1 : 0 });
  const workers = intFlag(values, 'workers', { min: offload === 'threads' ? 1 : 0 });
  const { arrivals, heavy } = readSchedule(stringFlag(values, 'schedule'));
  const corpus = readCorpus(stringFlag(values, 'corpus'));
  if (corpus.length < Math.min(cpuBytes, 65536) || corpus.length < 64) throw new UsageError('the corpus is too short');

  let allDone, fail;
  const finished = new Promise((resolve, reject) => ([allDone, fail] = [resolve, reject]));
  finished.catch(() => {}); // awaited below; this only keeps an early failure from being unhandled
  const pool = offload === 'threads' ? startPool(workers, corpus, fail) : null;
  if (pool) await Promise.race([finished, Promise.all(Array.from({ length: workers }, () => pool.run({ id: -1 })))]);
  const { feeder, startClock } = await startFeeder(arrivals);
  feeder.on('error', fail);
  le64(block(corpus, 64, 0)); // the first hash compiles its path: not on the clock

  const n = arrivals.length;
  const lines = new Array(n);
  const stalls = [];
  let done = 0;
  const heavyWork = (id) => (kind === 'cpu' ? heavyCpu(corpus, cpuBytes, id) : heavySleep(workUs, id));

  let start;
  const record = (id, result) => {
    lines[id] = `request ${id} ${process.hrtime.bigint() - (start + arrivals[id])} ${result}`;
    if (++done === n) allDone();
  };
  const onLoop = (id, work) => {
    let result;
    try {
      result = work(id);
    } catch {
      result = 'failed';
    }
    record(id, result);
  };
  const serve = (id) => {
    if (!heavy[id]) return onLoop(id, (i) => le64(block(corpus, 64, i)));
    if (pool) {
      return pool.run({ id, kind, cpuBytes, workUs }).then(
        (result) => record(id, result),
        () => record(id, 'failed'));
    }
    const t0 = process.hrtime.bigint();
    onLoop(id, heavyWork);
    stalls.push(`stall ${process.hrtime.bigint() - t0}`);
  };

  feeder.on('message', ([from, to]) => {
    for (let id = from; id < to; id++) serve(id);
  });
  if (n === 0) allDone();
  start = startClock();
  await finished;
  await Promise.all([feeder.terminate(), pool?.close()]);
  await reply([...lines, ...stalls]);
}
