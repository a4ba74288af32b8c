// fan_out: N GETs with at most K in flight, the way Node code usually limits a
// Promise.all: K runners that each take the next id until none is left, sharing a
// keep-alive Agent with K sockets, so every runner keeps its connection. Each request
// carries AbortSignal.timeout(T). For --group all, the first failure or timeout aborts
// one AbortController that every request also listens to: requests in flight end
// cancelled and runners stop taking ids. --group settled lets every request end on
// its own, each runner's ids settled one after another.
import { createHash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import http from 'node:http';
import { intFlag, reply, stringFlag } from './main.mjs';

// AbortSignal.any arrived in Node 20; this is the same for the two signals we hold.
function anySignal(signals) {
  const controller = new AbortController();
  const onAbort = (event) => controller.abort(event.target.reason);
  const dispose = () => signals.forEach((s) => s.removeEventListener('abort', onAbort));
  for (const s of signals) {
    if (s.aborted) {
      controller.abort(s.reason);
      break;
    }
    s.addEventListener('abort', onAbort, { once: true });
  }
  controller.signal.addEventListener('abort', dispose, { once: true });
  return { signal: controller.signal, dispose };
}

// Resolves with the status and whole body, or rejects with the signal's reason as
// soon as it aborts, even mid-body: the timeout covers the whole request.
function get(options, signal) {
  let onAbort;
  return new Promise((resolve, reject) => {
    onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    const req = http.get({ ...options, signal }, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
  }).finally(() => signal.removeEventListener('abort', onAbort));
}

export async function fanOut(values) {
  const host = stringFlag(values, 'host');
  const port = intFlag(values, 'port', { min: 1 });
  const target = stringFlag(values, 'target');
  const n = intFlag(values, 'n');
  const k = intFlag(values, 'k', { min: 1 });
  const group = stringFlag(values, 'group', ['all', 'settled']);
  const timeoutMs = intFlag(values, 'timeout-ms');

  const agent = new http.Agent({ keepAlive: true, maxSockets: k });
  const stop = new AbortController();
  setMaxListeners(k + 10, stop.signal); // one listener per request in flight
  const lines = new Array(n);
  let next = 0;
  let first = null;
  let last = 0n;
  let stoppedAt = null;

  const end = (id, ending, status, started, digest = '-') => {
    const now = process.hrtime.bigint();
    if (now > last) last = now;
    lines[id] = `request ${id} ${ending} ${status} ${now - started} ${digest}`;
    if (group === 'all' && (ending === 'failed' || ending === 'timed_out') && !stop.signal.aborted) {
      stoppedAt = now;
      stop.abort(new Error('group stopped'));
    }
  };

  const runner = async () => {
    while (next < n && !stop.signal.aborted) {
      const id = next++;
      const started = process.hrtime.bigint();
      first ??= started;
      const timeout = AbortSignal.timeout(timeoutMs);
      const { signal, dispose } = anySignal([stop.signal, timeout]);
      try {
        const { status, body } = await get({ host, port, path: target + id, agent }, signal);
        if (status === 200) end(id, 'ok', status, started, createHash('sha256').update(body).digest('hex').slice(0, 16));
        else if (status === 500) end(id, 'failed', status, started);
        else throw new Error(`request ${id}: unexpected HTTP status ${status}`);
      } catch (err) {
        if (!signal.aborted) throw err; // the server is unreachable or broke the protocol
        end(id, timeout.aborted && signal.reason === timeout.reason ? 'timed_out' : 'cancelled', 0, started);
      } finally {
        dispose();
      }
    }
  };

  try {
    await Promise.all(Array.from({ length: Math.min(k, n) }, runner));
  } catch (err) {
    throw new Error(`fan_out against ${host}:${port}: ${err.message}`);
  } finally {
    agent.destroy();
  }
  for (let id = next; id < n; id++) lines[id] = `request ${id} cancelled 0 - -`;
  lines.push(`wall_ns ${first === null ? 0n : last - first}`);
  if (stoppedAt !== null) lines.push(`cancel_ns ${last - stoppedAt}`);
  await reply(lines);
}
