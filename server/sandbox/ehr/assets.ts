/**
 * The demo EHR's static assets: its stylesheet and its small browser script (`browser/ehr.ts`), bundled with
 * esbuild in memory on first request. Kept apart from the SMART app's bundle (`client/`): the EHR is a different
 * "system" and must not share code with the app it launches.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const HERE = fileURLToPath(new URL('.', import.meta.url));

let bundle: Promise<string> | undefined;

/** The browser script, minified ES2020 module (built once per process; ~50 ms). */
export function browserBundle(): Promise<string> {
  bundle ??= (async () => {
    const esbuild = await import('esbuild');
    const out = await esbuild.build({
      // The production build (dist/) holds the compiled browser/ehr.js instead of the source.
      entryPoints: [`${HERE}browser/ehr${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`],
      bundle: true,
      write: false,
      format: 'esm',
      target: 'es2020',
      minify: true,
      legalComments: 'none',
      logLevel: 'silent',
    });
    return out.outputFiles[0]!.text;
  })();
  bundle.catch(() => (bundle = undefined));
  return bundle;
}

let css: string | undefined;

/** The stylesheet (`ehr.css`). */
export function ehrCss(): string {
  css ??= readFileSync(`${HERE}ehr.css`, 'utf8');
  return css;
}
