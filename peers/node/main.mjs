// concbench's Node peer: one command, a sub-command per workload (see ../README.md).
// This file parses the flags, dispatches, and holds what every workload shares: the
// corpus, block(), le64() and the cpu kernel. Worker threads import it for those
// helpers, so it only runs a command on the main thread.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { isMainThread } from 'node:worker_threads';
import { fanOut } from './fan_out.mjs';
import { blockingStall } from './blocking_stall.mjs';

// The corpus lives in a SharedArrayBuffer so that worker threads read the same bytes
// instead of each taking a 4 MiB copy.
export function readCorpus(path) {
  const bytes = readFileSync(path);
  const corpus = new Uint8Array(new SharedArrayBuffer(bytes.length));
  corpus.set(bytes);
  return corpus;
}

export function block(corpus, size, i) {
  const start = (i * 4099) % (corpus.length - size + 1);
  return corpus.subarray(start, start + size);
}

export function le64(bytes) {
  return createHash('sha256').update(bytes).digest().readBigUInt64LE(0);
}

export function heavyCpu(corpus, cpuBytes, id) {
  const chunk = Math.min(cpuBytes, 65536);
  const count = Math.ceil(cpuBytes / chunk);
  let sum = 0n;
  for (let i = id; i < id + count; i++) sum = BigInt.asUintN(64, sum + le64(block(corpus, chunk, i)));
  return sum;
}

// Atomics.wait on a private word nobody notifies is Node's synchronous sleep.
const sleepWord = new Int32Array(new SharedArrayBuffer(4));

export function heavySleep(workUs, id) {
  Atomics.wait(sleepWord, 0, 0, workUs / 1000);
  return BigInt.asUintN(64, BigInt(id + 1) * 0x9e3779b97f4a7c15n);
}

// Writes the whole reply as one string and resolves once it has left the process, so
// that exiting never cuts a piped stdout short.
export function reply(lines) {
  return new Promise((resolve, reject) =>
    process.stdout.write(lines.join('\n') + '\nend\n', (err) => (err ? reject(err) : resolve())));
}

export class UsageError extends Error {}

export function intFlag(values, name, { min = 0 } = {}) {
  const text = values[name];
  if (text === undefined) throw new UsageError(`--${name} is required`);
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < min)
    throw new UsageError(`--${name}: expected an integer >= ${min}, got '${text}'`);
  return value;
}

export function stringFlag(values, name, choices) {
  const text = values[name];
  if (text === undefined) throw new UsageError(`--${name} is required`);
  if (choices && !choices.includes(text)) throw new UsageError(`--${name}: expected ${choices.join('|')}, got '${text}'`);
  return text;
}

async function sha256(values) {
  const corpus = readCorpus(stringFlag(values, 'corpus'));
  const chunk = intFlag(values, 'chunk-bytes', { min: 1 });
  const total = intFlag(values, 'total-bytes');
  if (chunk > corpus.length) throw new UsageError(`--chunk-bytes ${chunk} exceeds the corpus`);
  const count = Math.floor(total / chunk);
  let sum = 0n;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) sum = BigInt.asUintN(64, sum + le64(block(corpus, chunk, i)));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  await reply([`sha256 ${count * chunk} ${seconds.toFixed(9)} ${sum}`]);
}

async function version() {
  await reply([`Node ${process.version}`]);
}

const commands = { fan_out: fanOut, blocking_stall: blockingStall, sha256, version };

const flags = Object.fromEntries(
  ['host', 'port', 'target', 'n', 'k', 'group', 'timeout-ms', 'schedule', 'corpus', 'kind', 'offload',
    'work-us', 'cpu-bytes', 'workers', 'chunk-bytes', 'total-bytes'].map((name) => [name, { type: 'string' }]));

async function main() {
  const { positionals, values } = (() => {
    try {
      return parseArgs({ options: flags, allowPositionals: true, strict: true });
    } catch (err) {
      throw new UsageError(err.message);
    }
  })();
  const command = commands[positionals[0]];
  if (positionals.length !== 1 || !command)
    throw new UsageError(`usage: main.mjs ${Object.keys(commands).join('|')} --flag value ...`);
  await command(values);
}

if (isMainThread) {
  main().catch((err) => {
    const message = err instanceof UsageError ? err.message : (err?.message ?? String(err));
    process.stderr.write(`node peer: ${message.split('\n')[0]}\n`, () => process.exit(1));
  });
}
