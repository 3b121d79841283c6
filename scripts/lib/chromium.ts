/**
 * The Chromium the browser checks run in, found without a root step:
 *
 * 1. `CHROMIUM_PATH`, when set (a binary you chose wins over any found one);
 * 2. Debian's Chromium at `/usr/bin/chromium` (the fast path where apt ran);
 * 3. the binary shipped inside the `@sparticuz/chromium` devDependency, which
 *    `npm ci` brings from the npm registry like any package. It is unpacked
 *    into the temp directory on first use (about 2 s) and started with the
 *    package's own `args`.
 *
 * Every launch also gets the flags this kind of machine needs: no sandbox
 * (root, containers), no GPU, and none of Chromium's background connections,
 * which a closed network refuses many at a time.
 */
import { existsSync } from 'node:fs';

/** Where the browser came from, for a report line. */
export type ChromiumSource = 'CHROMIUM_PATH' | 'debian' | '@sparticuz/chromium';

export interface ChromiumLaunch {
  readonly executablePath: string;
  /** Command-line flags for `chromium.launch({ args })` (headless mode is Playwright's to set). */
  readonly args: string[];
  readonly source: ChromiumSource;
}

const DEBIAN_CHROMIUM = '/usr/bin/chromium';

/** Flags every launch gets, whichever binary it is. */
const QUIET_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Finds a Chromium to launch.
 *
 * @throws Error when `CHROMIUM_PATH` names no file, or when neither Debian's
 *   Chromium nor `@sparticuz/chromium` is there (the message says how to get one).
 */
export async function findChromium(): Promise<ChromiumLaunch> {
  const chosen = process.env['CHROMIUM_PATH'];
  if (chosen !== undefined && chosen !== '') {
    if (!existsSync(chosen)) throw new Error(`CHROMIUM_PATH is ${chosen}, which does not exist`);
    return { executablePath: chosen, args: QUIET_FLAGS, source: 'CHROMIUM_PATH' };
  }
  if (existsSync(DEBIAN_CHROMIUM)) return { executablePath: DEBIAN_CHROMIUM, args: QUIET_FLAGS, source: 'debian' };
  let packaged: { executablePath(): Promise<string>; readonly args: string[] };
  try {
    packaged = (await import('@sparticuz/chromium')).default;
  } catch (error) {
    throw new Error(
      `no Chromium: ${DEBIAN_CHROMIUM} is absent and @sparticuz/chromium could not be loaded (run \`npm ci\`; ` +
        `or \`apt-get install -y chromium\`, or set CHROMIUM_PATH)`,
      { cause: error },
    );
  }
  const executablePath = await packaged.executablePath();
  // Its own flags, less its headless mode (Playwright sets that), then ours.
  const args = packaged.args.filter((flag) => !flag.startsWith('--headless'));
  for (const flag of QUIET_FLAGS) if (!args.includes(flag)) args.push(flag);
  return { executablePath, args, source: '@sparticuz/chromium' };
}
