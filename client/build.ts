/**
 * Builds the SMART app (issue 7, item 1) with esbuild into `client/dist/` (git-ignored):
 * `launch.html` + `launch.js` (SMART launch: EHR and standalone), `index.html` + `app.js` + `app.css` (the app).
 * Everything the page needs is in the bundle — scripts, styles, no web fonts (a system font stack) — so the app
 * makes no request outside the service and the configured FHIR server (the CSP in `server/app-static.ts` enforces it).
 *
 * `npx tsx client/build.ts` builds, prints each file's size raw and gzipped, and exits 1 when the total gzipped
 * size exceeds {@link GZIP_BUDGET_BYTES} (issue 7: ≤ 300 KB). The server calls {@link ensureClientBundle} at
 * start-up, which rebuilds only when `client/dist` is missing or older than the sources. The production start
 * (`npm run start:prod`, compiled JavaScript in `dist/`) builds nothing: `npm run build` made the bundle, and the
 * server only checks with {@link missingBundleFiles} that it is there.
 */
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { REPO_ROOT } from '../server/config.ts';

/** The app's sources, also when this module runs compiled from `dist/client/build.js`. */
const CLIENT_DIR = join(REPO_ROOT, 'client');
/** Output folder served at `/app/`. */
export const CLIENT_DIST = join(CLIENT_DIR, 'dist');
/** Source folders and files whose changes make the bundle stale. */
const SOURCES = [join(CLIENT_DIR, 'src'), join(CLIENT_DIR, 'public'), join(CLIENT_DIR, 'build.ts'), join(CLIENT_DIR, '../server/orders/service-requests.ts'), join(CLIENT_DIR, '../server/fls/types.ts'), join(CLIENT_DIR, '../server/risk/numbers.ts')];
/** Written last: its mtime is the build time. */
const STAMP = '.build-stamp.json';
/** Issue 7: the bundle must stay at or below 300 KB gzipped (sum of every file served). */
export const GZIP_BUDGET_BYTES = 300 * 1024;

export interface BuiltFile {
  name: string;
  bytes: number;
  gzipBytes: number;
}

export interface BuildReport {
  outDir: string;
  files: BuiltFile[];
  totalBytes: number;
  totalGzipBytes: number;
  ms: number;
}

/** The bundle exceeds its size budget. */
export class BundleBudgetError extends Error {
  override readonly name = 'BundleBudgetError';
}

function newestMtime(path: string): number {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const e of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, e)));
  return newest;
}

/** The files of a complete bundle. */
const BUNDLE_FILES = ['index.html', 'launch.html', 'app.js', 'launch.js', 'app.css'] as const;

/** The files of a complete bundle that `outDir` lacks (none: the bundle is there). */
export function missingBundleFiles(outDir: string = CLIENT_DIST): string[] {
  return [STAMP, ...BUNDLE_FILES].filter((f) => !existsSync(join(outDir, f)));
}

/** True when `client/dist` is missing, incomplete or older than any source file. */
export function clientBundleIsStale(outDir: string = CLIENT_DIST): boolean {
  if (missingBundleFiles(outDir).length > 0) return true;
  const stamp = join(outDir, STAMP);
  const built = statSync(stamp).mtimeMs;
  return SOURCES.some((s) => newestMtime(s) > built);
}

function sizes(dir: string): BuiltFile[] {
  return readdirSync(dir)
    .filter((n) => !n.startsWith('.') && !n.endsWith('.map'))
    .sort()
    .map((name) => {
      const buf = readFileSync(join(dir, name));
      return { name, bytes: buf.length, gzipBytes: gzipSync(buf, { level: 9 }).length };
    });
}

/**
 * Builds the bundle into a fresh folder and swaps it in, so a server serving `client/dist` never sees a
 * half-written bundle and two processes building at once do not corrupt each other's output.
 */
export async function buildClient(opts: { outDir?: string; minify?: boolean } = {}): Promise<BuildReport> {
  const t0 = performance.now();
  const outDir = resolve(opts.outDir ?? CLIENT_DIST);
  const tmp = `${outDir}.new-${process.pid}-${Date.now()}`;
  // Imported lazily: esbuild is a build tool; a server whose bundle is already built does not load it.
  const esbuild = await import('esbuild');
  mkdirSync(tmp, { recursive: true });
  try {
    await esbuild.build({
      entryPoints: { app: join(CLIENT_DIR, 'src/main.tsx'), launch: join(CLIENT_DIR, 'src/launch.ts') },
      outdir: tmp,
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: ['es2022', 'chrome110', 'firefox110', 'safari16'],
      minify: opts.minify ?? true,
      sourcemap: false,
      legalComments: 'none',
      jsx: 'automatic',
      jsxImportSource: 'preact',
      // fhirclient's "pure" build: no fetch/AbortController polyfills (every supported browser has them).
      define: { FHIRCLIENT_PURE: 'true', 'process.env.NODE_ENV': '"production"' },
      // Node-only fallbacks fhirclient never reaches in a browser with WebCrypto.
      alias: { 'isomorphic-webcrypto': join(CLIENT_DIR, 'src/shims/empty.ts'), 'cross-fetch': join(CLIENT_DIR, 'src/shims/empty.ts') },
      loader: { '.woff2': 'file', '.png': 'file', '.svg': 'file' },
      logLevel: 'silent',
    });
    cpSync(join(CLIENT_DIR, 'public'), tmp, { recursive: true });
    const files = sizes(tmp);
    writeFileSync(join(tmp, STAMP), JSON.stringify({ builtAt: new Date().toISOString(), files }, null, 2));
    const old = `${outDir}.old-${process.pid}-${Date.now()}`;
    try {
      renameSync(outDir, old);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    try {
      renameSync(tmp, outDir);
    } catch (err) {
      // Another process swapped its (identical) bundle in between: keep it.
      if (!['ENOTEMPTY', 'EEXIST'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
      rmSync(tmp, { recursive: true, force: true });
    }
    rmSync(old, { recursive: true, force: true });
    const totalBytes = files.reduce((a, f) => a + f.bytes, 0);
    const totalGzipBytes = files.reduce((a, f) => a + f.gzipBytes, 0);
    return { outDir, files, totalBytes, totalGzipBytes, ms: performance.now() - t0 };
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** Builds the bundle when it is missing or stale; returns the report, or null when it was up to date. */
export async function ensureClientBundle(outDir: string = CLIENT_DIST): Promise<BuildReport | null> {
  if (!clientBundleIsStale(outDir)) return null;
  return buildClient({ outDir });
}

/** Formats a build report as the table the CLI prints. */
export function formatReport(r: BuildReport): string {
  const kb = (n: number): string => `${(n / 1024).toFixed(1)} KB`;
  const lines = r.files.map((f) => `  ${f.name.padEnd(14)} ${kb(f.bytes).padStart(10)}  ${kb(f.gzipBytes).padStart(10)} gzipped`);
  lines.push(`  ${'total'.padEnd(14)} ${kb(r.totalBytes).padStart(10)}  ${kb(r.totalGzipBytes).padStart(10)} gzipped (budget ${kb(GZIP_BUDGET_BYTES)})`);
  return lines.join('\n');
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const r = await buildClient();
  process.stdout.write(`client bundle built in ${Math.round(r.ms)} ms → client/dist/\n${formatReport(r)}\n`);
  if (r.totalGzipBytes > GZIP_BUDGET_BYTES) {
    process.stderr.write(`${new BundleBudgetError(`bundle is ${r.totalGzipBytes} bytes gzipped, over the ${GZIP_BUDGET_BYTES}-byte budget`).message}\n`);
    process.exit(1);
  }
}
