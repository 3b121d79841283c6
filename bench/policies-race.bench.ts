/**
 * Per-call cost of racing two tasks — one fulfils at once (a resolved
 * promise), the other is pending until its signal aborts, then rejects with
 * the reason (a well-behaved loser) — as a ratio to abort-controller-x's
 * `race` in the same run: loopsafe's `safeRace` (with and without an outside
 * signal) and the plainest hand-written race (one AbortController, a
 * `Promise.race`, the controller aborted once it settles).
 *
 * abort-controller-x's `race` settles only once every promise has settled (it
 * waits for the aborted loser); `safeRace` settles as soon as the winner
 * fulfils, the loser aborted in the same tick. Both abort the loser.
 *
 * Run: npx tsx bench/policies-race.bench.ts   (--quick for a smoke run, --json for machine-readable output)
 */
import { race as acxRace } from 'abort-controller-x';
import { safeRace } from '../src/race.js';
import { abortListeners, emit, flags, ratioTarget, timeCandidates } from './lib/harness.js';
import { targets } from './lib/targets.js';

const CALLS = flags.calls ?? (flags.quick ? 5_000 : 50_000);
const ROUNDS = flags.rounds ?? (flags.quick ? 1 : 7);

const ACX = 'abort-controller-x race';
const HAND = 'hand-written Promise.race + AbortController';
const LOOPSAFE = 'loopsafe safeRace([a, b])';
const LOOPSAFE_SIGNAL = 'loopsafe safeRace([a, b], { signal })';

const winner = (): Promise<number> => Promise.resolve(1);
/** Pending until `signal` aborts, then rejects with its reason. */
const loser = (signal: AbortSignal): Promise<number> =>
  new Promise((_, reject) => {
    signal.addEventListener(
      'abort',
      () => {
        reject(signal.reason as Error);
      },
      { once: true },
    );
  });

const never = new AbortController().signal;
const tasks = [winner, loser] as const;

/** Made once: aborting with a reason of one's own skips the platform's DOMException (see DESIGN.md, performance notes). */
const lost = new Error('another task won');

/** The plainest race a strong engineer writes: one controller for both, aborted once the race settles. */
function handWritten(): Promise<number> {
  const controller = new AbortController();
  const { signal } = controller;
  const abort = (): void => {
    controller.abort(lost);
  };
  const raced = Promise.race([winner(), loser(signal)]);
  raced.then(abort, abort);
  return raced;
}

function candidates(): Record<string, () => Promise<unknown>> {
  return {
    [ACX]: () => acxRace(never, (signal) => [winner(), loser(signal)]),
    [HAND]: handWritten,
    [LOOPSAFE]: () => safeRace(tasks),
    [LOOPSAFE_SIGNAL]: () => safeRace(tasks, { signal: never }),
  };
}

async function main(): Promise<void> {
  const rows = await timeCandidates(candidates(), ACX, CALLS, ROUNDS);
  const tables = { race: rows };
  const failures: string[] = [];
  // Every loser was aborted and nothing is left listening on the outside signal.
  if (abortListeners(never) > 0) failures.push('abort listeners left on the outside signal');
  emit(
    {
      bench: 'race',
      node: process.version,
      quick: flags.quick,
      params: { calls: CALLS, rounds: ROUNDS },
      tables,
      targets: [ratioTarget(targets.raceVsAcx, tables, 'race', LOOPSAFE, ACX)],
      failures,
      notes: [
        'two tasks: one fulfils at once, the other rejects with the reason when its signal aborts',
        "abort-controller-x's race settles once every promise settled (it waits for the aborted loser); safeRace settles when the winner fulfils",
        'ratios are to abort-controller-x race, measured in the same run, rounds interleaved',
      ],
    },
    { race: 'Race of two tasks (µs per call; ratio to abort-controller-x race)' },
  );
}

await main();
