// loopsafe's TypeDoc plugin: source links that resolve.
//
// - Every "Defined in" link points at the file's path in the repository (src/…), at the commit
//   the site is built from (`git rev-parse HEAD`; `main` outside a git checkout), so a link
//   still shows the line it names after the file changes.
// - Members inherited from a declaration outside the repository (TypeScript's lib files,
//   @types/node: `[Symbol.dispose]` from `Disposable`) get no source link: there is no page of
//   the repository to link to.
// - CHANGELOG.md is published as "Changelog" in the Project group: it keeps no frontmatter, so
//   GitHub shows it as Keep a Changelog writes it.
import { execFileSync } from 'node:child_process';
import { relative, resolve, sep } from 'node:path';
import { Converter } from 'typedoc';

const REPOSITORY = 'https://github.com/loopsafe/loopsafe';
const root = resolve(import.meta.dirname, '..');

function revision() {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return 'main';
  }
}

/** The file's path in the repository (`src/sleep.ts`), or undefined for one outside it. */
function repositoryPath(fullFileName) {
  const path = relative(root, fullFileName);
  if (path.startsWith('..') || path.split(sep).includes('node_modules')) return undefined;
  return path.split(sep).join('/');
}

/** @param {import('typedoc').Application} app */
export function load(app) {
  app.converter.on(Converter.EVENT_CREATE_DOCUMENT, (_context, document) => {
    if (document.name !== 'CHANGELOG') return;
    document.name = 'Changelog';
    document.frontmatter['group'] = 'Project';
  });
  app.converter.on(Converter.EVENT_RESOLVE_END, (context) => {
    const rev = revision();
    for (const reflection of Object.values(context.project.reflections)) {
      const sources = reflection.sources;
      if (sources === undefined) continue;
      const kept = [];
      for (const source of sources) {
        const path = repositoryPath(source.fullFileName);
        if (path === undefined) continue;
        source.fileName = path;
        source.url = `${REPOSITORY}/blob/${rev}/${path}#L${String(source.line)}`;
        kept.push(source);
      }
      reflection.sources = kept.length > 0 ? kept : undefined;
    }
  });
}
