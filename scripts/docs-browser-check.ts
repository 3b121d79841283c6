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
 * - every "Defined in" link points at the repository's `src/` at the commit the site was built from;
 * - at 390 px (a phone) and 1440 px, no page is wider than the window (wide tables and code blocks
 *   scroll inside themselves), and on a phone the menu drawer opens inside the window;
 * - every chart (docs/site/media/*.svg drawn by bench/report.ts) has bars of non-zero size, and its
 *   smallest label is at least 8 px tall as a phone shows it;
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
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize, sep } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { root } from '../test/fixtures/doc-examples.js';
import { findChromium } from './lib/chromium.js';

const siteDir = join(root, 'docs', 'site');
const artifactsDir = join(root, 'artifacts', 'docs-site');
// A bound on the whole check (a hang becomes a failure), not a speed target: 180 pages take ~2 min on CI.
const CHECK_TIMEOUT_MS = 300_000;
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
  sources: [...document.querySelectorAll('.tsd-sources li')]
    .filter((item) => item.textContent.trim().startsWith('Defined in'))
    .flatMap((item) => [...item.querySelectorAll('a[href]')].map((element) => element.getAttribute('href'))),
  ids: [
    ...[...document.querySelectorAll('[id]')].map((element) => element.id),
    ...[...document.querySelectorAll('a[name]')].map((element) => element.getAttribute('name')),
  ],
  hrefs: [...document.querySelectorAll('a[href], link[href], script[src], img[src]')].map(
    (element) => element.getAttribute('href') ?? element.getAttribute('src'),
  ),
})`;

/** Runs in the page: whether the theme has shown the body (it hides it until its script runs). */
const SHOWN = `document.body.style.display !== 'none' && document.body.getBoundingClientRect().width > 0`;

/** Runs in the page: how wide the document is, and how large each chart image is shown. */
const LAYOUT_SCAN = `({
  scrollWidth: document.documentElement.scrollWidth,
  images: [...document.querySelectorAll('img[src$=".svg"]')].map((image) => ({
    src: image.getAttribute('src'),
    shown: image.getBoundingClientRect().width,
    natural: image.naturalWidth,
  })),
})`;

/** Runs in the page: the open drawer's box. */
const DRAWER_SCAN = `(() => {
  const box = document.querySelector('.col-sidebar').getBoundingClientRect();
  return { left: box.left, right: box.right, width: box.width, viewport: window.visualViewport.width };
})()`;

/** Runs in a chart's SVG document: its bars, and how many have an area. */
const BARS_SCAN = `(() => {
  const bars = [...document.querySelectorAll('[aria-roledescription="bar"]')];
  const sized = bars.filter((bar) => { const box = bar.getBBox(); return box.width > 0 && box.height > 0; });
  return { total: bars.length, sized: sized.length };
})()`;

/** The site's revision, as scripts/typedoc-plugin.mjs links to it. */
function gitRevision(): string {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
  } catch {
    return 'main';
  }
}

/** The charts bench/report.ts draws (every media SVG with bars), each with its smallest font size in px. */
function chartFonts(): Map<string, number> {
  const fonts = new Map<string, number>();
  const media = join(siteDir, 'media');
  for (const file of existsSync(media) ? readdirSync(media) : []) {
    if (!file.endsWith('.svg')) continue;
    const svg = readFileSync(join(media, file), 'utf8');
    if (!svg.includes('aria-roledescription="bar"')) continue; // a diagram, not a chart
    const sizes = [...svg.matchAll(/font-size="([\d.]+)px"/g)].map((match) => Number(match[1]));
    fonts.set(file, sizes.length > 0 ? Math.min(...sizes) : 0);
  }
  return fonts;
}

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
    /** Every problem a page reports while it loads, under the label `where()` gives at that moment. */
    const watchPage = (view: typeof page, where: () => string): void => {
      view.on('console', (message) => {
        if (message.type() === 'error') problems.push(`${where()}: console error: ${message.text()}`);
      });
      view.on('pageerror', (error) => {
        problems.push(`${where()}: uncaught exception: ${error.message}`);
      });
      view.on('requestfailed', (request) => {
        problems.push(`${where()}: request failed: ${request.url()} (${request.failure()?.errorText ?? 'unknown'})`);
      });
      view.on('response', (response) => {
        if (response.status() >= 400)
          problems.push(`${where()}: HTTP ${String(response.status())} for ${response.url()}`);
      });
    };
    watchPage(page, () => current);

    // Crawl every page reachable from the home page.
    const revision = gitRevision();
    const sourceLink = new RegExp(`^https://github\\.com/loopsafe/loopsafe/blob/${revision}/src/[\\w./-]+\\.ts#L\\d+$`);
    let sourceLinks = 0;
    const ids = new Map<string, Set<string>>();
    const links: LinkRecord[] = [];
    const queue = [`${origin}/index.html`];
    const seen = new Set(queue);
    // Crawled on a few tabs at once: each takes the next page found, until none is left and none is loading.
    let loading = 0;
    const crawlTab = async (view: typeof page, label: (where: string) => void): Promise<void> => {
      for (;;) {
        const url = queue.shift();
        if (url === undefined) {
          if (loading === 0) return;
          await new Promise((resolve) => setTimeout(resolve, 5));
          continue;
        }
        loading++;
        try {
          const where = url.slice(origin.length);
          label(where);
          const response = await view.goto(url, { waitUntil: 'load' });
          if (response?.status() !== 200) {
            problems.push(`${where}: HTTP ${String(response?.status())}`);
            continue;
          }
          const found = await view.evaluate<{ ids: string[]; hrefs: string[]; sources: string[] }>(PAGE_SCAN);
          ids.set(url, new Set(found.ids));
          for (const href of found.sources) {
            if (!sourceLink.test(href))
              problems.push(`${where}: "Defined in" links to ${href}, not ${String(sourceLink)}`);
            sourceLinks++;
          }
          for (const href of found.hrefs) {
            const target = new URL(href, url);
            if (target.origin !== origin) continue; // external links (GitHub, MDN…) are not followed
            links.push({ from: where, href, target });
            const pageUrl = `${target.origin}${target.pathname}`;
            if (pageUrl.endsWith('.html') && !seen.has(pageUrl)) {
              seen.add(pageUrl);
              queue.push(pageUrl);
            }
          }
        } finally {
          loading--;
        }
      }
    };
    const crawlers = [
      crawlTab(page, (where) => {
        current = where;
      }),
    ];
    for (let i = 1; i < 3; i++) {
      const view = await context.newPage();
      let here = '';
      watchPage(view, () => here);
      crawlers.push(
        crawlTab(view, (where) => {
          here = where;
        }).finally(() => view.close()),
      );
    }
    await Promise.all(crawlers);

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

    if (sourceLinks === 0) problems.push('no "Defined in" link on any page');

    // Layout: nothing scrolls the page sideways, on a phone and on a wide screen.
    const pages = [...seen].filter((url) => url.endsWith('.html'));
    const charts = chartFonts();
    let chartsShown = 0;
    // The phone is emulated as one (a mobile viewport, as a phone's browser lays a page out): there, a
    // page wider than the screen widens the layout viewport, and a fixed drawer with it.
    const cdp = await context.newCDPSession(page);
    const phone = async (on: boolean): Promise<void> => {
      if (on) {
        await cdp.send('Emulation.setDeviceMetricsOverride', {
          width: 390,
          height: 800,
          deviceScaleFactor: 3,
          mobile: true,
        });
      } else {
        await cdp.send('Emulation.clearDeviceMetricsOverride');
      }
    };
    // The two widths, each over every page, on a few tabs at once (each with its own emulation).
    const TABS = 3;
    const browser = context;
    for (const width of [390, 1440]) {
      const queue = [...pages];
      const tab = async (): Promise<void> => {
        const view = await browser.newPage();
        let here = '';
        watchPage(view, () => here);
        await view.setViewportSize({ width, height: 900 });
        const session = await browser.newCDPSession(view);
        if (width === 390)
          await session.send('Emulation.setDeviceMetricsOverride', {
            width: 390,
            height: 800,
            deviceScaleFactor: 3,
            mobile: true,
          });
        for (let url = queue.shift(); url !== undefined; url = queue.shift()) {
          here = `${url.slice(origin.length)} at ${String(width)} px`;
          await view.goto(url, { waitUntil: 'load' });
          await view.waitForFunction(SHOWN); // the theme keeps the body hidden until its script has run
          const layout = await view.evaluate<{
            scrollWidth: number;
            images: { src: string; shown: number; natural: number }[];
          }>(LAYOUT_SCAN);
          if (layout.scrollWidth > width + 1)
            problems.push(`${here}: the page is ${String(layout.scrollWidth)} px wide, wider than the window`);
          if (width !== 390) continue;
          for (const image of layout.images) {
            const font = charts.get(image.src.split('/').pop() ?? '');
            if (font === undefined || image.natural === 0) continue;
            chartsShown++;
            const shownPx = (font * image.shown) / image.natural;
            if (shownPx < 8)
              problems.push(`${here}: ${image.src}'s smallest label shows ${shownPx.toFixed(1)} px tall (at least 8)`);
          }
        }
        await view.close();
      };
      await Promise.all(Array.from({ length: TABS }, tab));
    }
    if (chartsShown === 0) problems.push('no chart is shown on any page at 390 px');

    // On a phone, the menu drawer opens inside the screen (the landing page and the widest guide).
    await page.setViewportSize({ width: 390, height: 800 });
    await phone(true);
    for (const url of pages.filter((u) => /\/index\.html$|Benchmarks\.html$/.test(u))) {
      current = `${url.slice(origin.length)} (menu at 390 px)`;
      await page.goto(url, { waitUntil: 'load' });
      await page.waitForFunction(SHOWN);
      await page.click('#tsd-toolbar-menu-trigger');
      await page.waitForTimeout(600); // the drawer's 0.4 s animation
      const box = await page.evaluate<{ left: number; right: number; width: number; viewport: number }>(DRAWER_SCAN);
      if (box.width <= 0 || box.left < -1 || box.right > box.viewport + 1)
        problems.push(
          `${current}: the open drawer spans ${box.left.toFixed(0)}..${box.right.toFixed(0)} px of a ${String(box.viewport)} px window`,
        );
    }

    await phone(false);

    // Every chart has bars of non-zero size.
    for (const chart of charts.keys()) {
      current = `/media/${chart}`;
      await page.goto(`${origin}/media/${chart}`, { waitUntil: 'load' });
      const bars = await page.evaluate<{ total: number; sized: number }>(BARS_SCAN);
      if (bars.sized === 0) problems.push(`${current}: no bar of non-zero size (${String(bars.total)} bars)`);
    }
    await page.setViewportSize({ width: 1280, height: 900 });

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

    if (problems.length > 0)
      fail(`${String(problems.length)} problem(s) on ${String(pages.length)} pages:\n  ${problems.join('\n  ')}`);
    console.log(
      `docs-browser-check: ${String(pages.length)} pages load without console errors; ${String(links.length)} internal links ` +
        `resolve (${String(new Set(links.map((link) => link.target.href)).size)} distinct); ${String(sourceLinks)} "Defined in" ` +
        `links point at src/ at ${revision.slice(0, 12)}; no page is wider than a 390 px or 1440 px window; the drawer ` +
        `opens inside the window; ${String(charts.size)} charts have bars, legible on a phone; search finds safeWaitFor; ` +
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
