/**
 * Checks the built docs site (docs/site, from `npm run docs`) in a real
 * browser: Debian's Chromium, headless, driven by playwright-core.
 *
 * - serves docs/site on 127.0.0.1 (port 0) with a tiny node:http server;
 * - visits every page reachable from the home page: each must load (HTTP 200)
 *   without a console error, an uncaught exception, a failed request or a
 *   request leaving 127.0.0.1;
 * - every internal link must resolve: the file exists and, for `#anchor`
 *   links, the target page has an element with that id;
 * - the search box finds `safeWaitFor` and its result opens the function's page;
 * - saves screenshots of the home page and the Getting started and Concepts guides to
 *   artifacts/docs-site/ (gitignored), for a human to look at.
 *
 * Bounded: every browser step has a timeout, and the whole run is killed
 * after CHECK_TIMEOUT_MS — it fails, it never hangs.
 *
 * Run after `npm run docs`: `tsx scripts/docs-browser-check.ts`.
 * Chromium: CHROMIUM_PATH, else Debian's (`/usr/bin/chromium`), else the one
 * in the `@sparticuz/chromium` devDependency (scripts/lib/chromium.ts).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize, sep } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { root } from '../test/fixtures/doc-examples.js';
import { findChromium } from './lib/chromium.js';

const siteDir = join(root, 'docs', 'site');
const artifactsDir = join(root, 'artifacts', 'docs-site');
const CHECK_TIMEOUT_MS = 180_000;
const STEP_TIMEOUT_MS = 15_000;

function fail(message: string): never {
  console.error(`docs-browser-check: FAILED: ${message}`);
  process.exit(1);
}

if (!existsSync(join(siteDir, 'index.html'))) fail('docs/site/index.html is missing: run `npm run docs` first.');

// The whole check is bounded: a hang becomes a failure.
const watchdog = setTimeout(() => {
  fail(`did not finish within ${String(CHECK_TIMEOUT_MS / 1000)} s`);
}, CHECK_TIMEOUT_MS);
watchdog.unref();

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.ico': 'image/x-icon',
};

/** The file under docs/site for a URL path, or undefined if there is none. */
function siteFile(pathname: string): string | undefined {
  let path: string;
  try {
    path = decodeURIComponent(pathname);
  } catch {
    return undefined;
  }
  const file = normalize(join(siteDir, path.endsWith('/') ? `${path}index.html` : path));
  if (file !== siteDir && !file.startsWith(siteDir + sep)) return undefined;
  return existsSync(file) && statSync(file).isFile() ? file : undefined;
}

function serve(): Promise<Server> {
  const server = createServer((request, response) => {
    const file = siteFile(new URL(request.url ?? '/', 'http://127.0.0.1').pathname);
    if (file === undefined) {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    response
      .writeHead(200, { 'content-type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream' })
      .end(readFileSync(file));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      resolve(server);
    });
  });
}

/**
 * Runs in the page (a string: this project compiles without the DOM types):
 * the anchors a link can target, and every URL the page links to or loads.
 */
const PAGE_SCAN = `({
  ids: [
    ...[...document.querySelectorAll('[id]')].map((element) => element.id),
    ...[...document.querySelectorAll('a[name]')].map((element) => element.getAttribute('name')),
  ],
  hrefs: [...document.querySelectorAll('a[href], link[href], script[src], img[src]')].map(
    (element) => element.getAttribute('href') ?? element.getAttribute('src'),
  ),
})`;

interface LinkRecord {
  readonly from: string;
  readonly href: string;
  readonly target: URL;
}

async function main(): Promise<void> {
  const server = await serve();
  const origin = `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`;
  const userDataDir = mkdtempSync(join(tmpdir(), 'loopsafe-docs-chromium-'));
  let context: BrowserContext | undefined;
  const problems: string[] = [];
  try {
    const found = await findChromium();
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: found.executablePath,
      headless: true,
      timeout: STEP_TIMEOUT_MS,
      viewport: { width: 1280, height: 900 },
      args: found.args,
    });
    context.setDefaultTimeout(STEP_TIMEOUT_MS);
    context.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
    // The site must be self-contained: nothing may leave 127.0.0.1.
    await context.route('**/*', async (route) => {
      const url = route.request().url();
      if (url.startsWith(`${origin}/`) || url.startsWith('data:')) await route.continue();
      else {
        problems.push(`request leaves the site: ${url} (from ${route.request().frame().url()})`);
        await route.abort();
      }
    });
    const page = context.pages()[0] ?? (await context.newPage());
    let current = '';
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`${current}: console error: ${message.text()}`);
    });
    page.on('pageerror', (error) => {
      problems.push(`${current}: uncaught exception: ${error.message}`);
    });
    page.on('requestfailed', (request) => {
      problems.push(`${current}: request failed: ${request.url()} (${request.failure()?.errorText ?? 'unknown'})`);
    });
    page.on('response', (response) => {
      if (response.status() >= 400)
        problems.push(`${current}: HTTP ${String(response.status())} for ${response.url()}`);
    });

    // Crawl every page reachable from the home page.
    const ids = new Map<string, Set<string>>();
    const links: LinkRecord[] = [];
    const queue = [`${origin}/index.html`];
    const seen = new Set(queue);
    while (queue.length > 0) {
      const url = queue.shift() ?? '';
      current = url.slice(origin.length);
      const response = await page.goto(url, { waitUntil: 'load' });
      if (response?.status() !== 200) {
        problems.push(`${current}: HTTP ${String(response?.status())}`);
        continue;
      }
      const found = await page.evaluate<{ ids: string[]; hrefs: string[] }>(PAGE_SCAN);
      ids.set(url, new Set(found.ids));
      for (const href of found.hrefs) {
        const target = new URL(href, url);
        if (target.origin !== origin) continue; // external links (GitHub, MDN…) are not followed
        links.push({ from: current, href, target });
        const pageUrl = `${target.origin}${target.pathname}`;
        if (pageUrl.endsWith('.html') && !seen.has(pageUrl)) {
          seen.add(pageUrl);
          queue.push(pageUrl);
        }
      }
    }

    // Every internal link resolves: the file exists, and so does its #anchor.
    for (const { from, href, target } of links) {
      const pageUrl = `${target.origin}${target.pathname}`;
      if (siteFile(target.pathname) === undefined) {
        problems.push(`${from}: broken link ${href} (no such file)`);
        continue;
      }
      const anchor = decodeURIComponent(target.hash.slice(1));
      if (anchor === '' || !pageUrl.endsWith('.html')) continue;
      if (!(ids.get(pageUrl)?.has(anchor) ?? false))
        problems.push(`${from}: broken link ${href} (no #${anchor} on that page)`);
    }

    // Search finds safeWaitFor, and the result opens its page.
    current = '/index.html (search)';
    await page.goto(`${origin}/index.html`, { waitUntil: 'load' });
    await page.click('#tsd-search-trigger');
    await page.fill('#tsd-search-input', 'safeWaitFor');
    const result = page.locator('#tsd-search-results a', { hasText: 'safeWaitFor' }).first();
    await result.waitFor({ state: 'visible' });
    const resultHref = (await result.getAttribute('href')) ?? '';
    if (!resultHref.includes('safeWaitFor')) problems.push(`search result for safeWaitFor links to ${resultHref}`);
    await result.click();
    await page.waitForURL(/safeWaitFor\.html/);
    const heading = (await page.locator('h1').first().textContent()) ?? '';
    if (!heading.includes('safeWaitFor'))
      problems.push(`the search result opened a page titled ${JSON.stringify(heading)}`);

    // Screenshots, for a human to judge the site.
    mkdirSync(artifactsDir, { recursive: true });
    current = '/index.html (screenshot)';
    await page.goto(`${origin}/index.html`, { waitUntil: 'load' });
    await page.screenshot({ path: join(artifactsDir, 'home.png') });
    for (const [pattern, name] of [
      [/getting[_-]started/i, 'getting-started'],
      [/\/concepts\.html$/i, 'concepts'],
    ] as const) {
      const guide = [...seen].find((url) => pattern.test(url));
      if (guide === undefined) {
        problems.push(`no page matching ${String(pattern)} to screenshot`);
        continue;
      }
      await page.goto(guide, { waitUntil: 'load' });
      await page.screenshot({ path: join(artifactsDir, `${name}.png`), fullPage: true });
    }

    const pages = [...seen].filter((url) => url.endsWith('.html')).length;
    if (problems.length > 0)
      fail(`${String(problems.length)} problem(s) on ${String(pages)} pages:\n  ${problems.join('\n  ')}`);
    console.log(
      `docs-browser-check: ${String(pages)} pages load without console errors; ${String(links.length)} internal links ` +
        `resolve (${String(new Set(links.map((link) => link.target.href)).size)} distinct); search finds safeWaitFor; ` +
        `screenshots in ${artifactsDir.slice(root.length)}`,
    );
  } finally {
    await context?.close().catch(() => undefined);
    await new Promise((resolve) => server.close(resolve));
    rmSync(userDataDir, { recursive: true, force: true });
  }
}

main().then(
  () => {
    clearTimeout(watchdog);
  },
  (error: unknown) => {
    fail(error instanceof Error ? (error.stack ?? error.message) : String(error));
  },
);
