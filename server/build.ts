/**
 * `npm run build`: the production build that `npm run start:prod` (`node dist/server/index.js`) runs, with plain
 * Node and no TypeScript loader at run time.
 *
 * 1. `dist/` is emptied (a file deleted from the sources must not live on in the build);
 * 2. `tsc -p tsconfig.build.json` compiles `server/` (and `client/build.ts`, which the server imports) to `dist/`,
 *    rewriting the `.ts` import specifiers to `.js` (`rewriteRelativeImportExtensions`);
 * 3. the files those modules read next to themselves (through `import.meta.url`) are copied beside the compiled
 *    code: every non-TypeScript file under `server/` except the demo cohort and READMEs (JSON schemas, the demo
 *    EHR's stylesheet), and `fhir-profiles/`, which `server/fhir/conceptmaps.ts` finds two folders up;
 * 4. the SMART app bundle is built into `client/dist/` (the production server only checks that it exists).
 *
 * Everything else (smart-config, models, the demo cohort) is read from the repository root at run time, so the
 * build is run in the checkout it will serve from.
 * @see https://www.typescriptlang.org/tsconfig/#rewriteRelativeImportExtensions
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildClient, formatReport, GZIP_BUDGET_BYTES } from '../client/build.ts';
import { REPO_ROOT } from './config.ts';

/** Output folder of the compiled server. */
export const DIST_DIR = join(REPO_ROOT, 'dist');

/** Folders under `server/` whose files are data read through configured paths, not module-relative assets. */
const NOT_ASSETS = [join(REPO_ROOT, 'server', 'sandbox', 'demo-cohort')];

/** The non-TypeScript files under `server/` that compiled modules read from their own folder. */
export function serverAssets(dir: string = join(REPO_ROOT, 'server')): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      if (!NOT_ASSETS.includes(path)) out.push(...serverAssets(path));
    } else if (!/\.(ts|tsx|md)$/.test(name)) {
      out.push(path);
    }
  }
  return out;
}

function copyAssets(): number {
  const assets = serverAssets();
  for (const file of assets) cpSync(file, join(DIST_DIR, relative(REPO_ROOT, file)));
  cpSync(join(REPO_ROOT, 'fhir-profiles'), join(DIST_DIR, 'fhir-profiles'), { recursive: true });
  return assets.length;
}

function compile(): void {
  const tsc = join(dirname(createRequire(import.meta.url).resolve('typescript/package.json')), 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', join(REPO_ROOT, 'tsconfig.build.json')], { cwd: REPO_ROOT, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`tsc -p tsconfig.build.json failed (exit ${r.status ?? r.signal})`);
  if (!existsSync(join(DIST_DIR, 'server', 'index.js'))) throw new Error('tsc wrote no dist/server/index.js');
}

async function main(): Promise<void> {
  const t0 = performance.now();
  rmSync(DIST_DIR, { recursive: true, force: true });
  compile();
  const assets = copyAssets();
  process.stdout.write(`server compiled → dist/ (${assets} assets and fhir-profiles/ copied) in ${Math.round(performance.now() - t0)} ms\n`);
  const report = await buildClient();
  process.stdout.write(`client bundle built in ${Math.round(report.ms)} ms → client/dist/\n${formatReport(report)}\n`);
  if (report.totalGzipBytes > GZIP_BUDGET_BYTES) throw new Error(`the client bundle is ${report.totalGzipBytes} bytes gzipped, over the ${GZIP_BUDGET_BYTES}-byte budget`);
  process.stdout.write(`build done; start with: npm run start:prod\n`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`build failed: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
