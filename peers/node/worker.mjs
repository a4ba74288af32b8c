// The two kinds of worker thread blocking_stall starts. The feeder plays the socket:
// it sleeps until each scheduled arrival and posts it to the main thread, whose loop
// wakes for it as it would for a readable connection (setTimeout on the loop itself
// rounds to whole milliseconds). An offload worker runs heavy requests off the loop.
import { parentPort, workerData } from 'node:worker_threads';
import { heavyCpu, heavySleep } from './main.mjs';

// `clock` is a SharedArrayBuffer: word 0 is the start flag, bytes 8..16 the start time.
// Waking on it is a futex wake; a first message to an idle worker took ~1 ms here.
function feed({ arrivals, clock }) {
  const flag = new Int32Array(clock, 0, 1);
  parentPort.postMessage('ready');
  Atomics.wait(flag, 0, 0);
  const start = new BigInt64Array(clock, 8, 1)[0];
  const word = new Int32Array(new SharedArrayBuffer(4));
  let i = 0;
  while (i < arrivals.length) {
    const now = process.hrtime.bigint();
    const wait = start + arrivals[i] - now;
    if (wait > 0n) {
      Atomics.wait(word, 0, 0, Number(wait) / 1e6); // a timed futex wait; timer slack is 1 ns
      continue;
    }
    // Arrivals already due (the feeder fell behind) go over in one message.
    let j = i + 1;
    while (j < arrivals.length && start + arrivals[j] <= now) j++;
    parentPort.postMessage([i, j]);
    i = j;
  }
}

function serve({ corpus }) {
  parentPort.on('message', ({ id, kind, cpuBytes, workUs }) => {
    if (id < 0) return parentPort.postMessage({ result: heavyCpu(corpus, 64, 0) }); // warm-up
    try {
      const result = kind === 'cpu' ? heavyCpu(corpus, cpuBytes, id) : heavySleep(workUs, id);
      parentPort.postMessage({ result });
    } catch (err) {
      parentPort.postMessage({ error: String(err?.message ?? err) });
    }
  });
}

(workerData.role === 'feeder' ? feed : serve)(workerData);
