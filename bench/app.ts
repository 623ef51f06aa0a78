/**
 * SMART app benchmark (issue 7): first meaningful render after the token response, and the bundle size.
 *
 * Starts the service (`npm start` as a child process: sandbox FHIR + SMART authorization, DICOMweb, hip-xray-v1),
 * then for each demo patient performs a real standalone launch in Debian's Chromium (PKCE, picker, redirect) and
 * reads the app's User Timing marks: `frcds:token` (token response in hand) → `frcds:assessment` (assessment JSON)
 * → `frcds:curve` (survival curve drawn), and the heatmap canvas drawn. Targets: ≤ 1.5 s token → curve;
 * ≤ 300 KB gzipped bundle.
 *
 *   npx tsx bench/app.ts [--patients demo-a-022,demo-a-003,...] [--rounds 2]
 *
 * Round 1 of a patient includes a cold assessment (chart read, DICOMweb fetch, inference); later rounds are served
 * from the service's cache — both are printed.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { CLIENT_DIST, GZIP_BUDGET_BYTES } from '../client/build.ts';
import { launchBrowser, newPage } from '../test/support/browser.ts';
import { startAppService } from '../test/support/app-service.ts';
import { standaloneLaunch } from '../test/support/smart-launch.ts';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
}

const patients = arg('patients', 'demo-a-022,demo-a-003,demo-a-010,demo-b-001,demo-a-030').split(',');
const rounds = Number(arg('rounds', '2'));
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const svc = await startAppService({ LOG_LEVEL: 'warn' });
const browser = await launchBrowser();
const rows: { patient: string; round: number; tokenToAssessment: number; tokenToCurve: number; tokenToHeatmap: number | null; navToToken: number }[] = [];
try {
  for (let round = 1; round <= rounds; round++) {
    for (const patient of patients) {
      const { context, page } = await newPage(browser, { width: 1024, height: 768 });
      await standaloneLaunch(page, svc.base, { patientId: patient });
      await page.waitForSelector('#survival-canvas[data-drawn="true"]', { timeout: 60_000 });
      const hasImage = await page.$('#heatmap-canvas');
      if (hasImage) await page.waitForSelector('#heatmap-canvas[data-drawn="true"]', { timeout: 60_000 });
      const heatAt = hasImage ? await page.evaluate(() => performance.now()) : null;
      // No named functions inside evaluate: tsx would wrap them in a helper the page does not have.
      const [token, assessment, curve] = await page.evaluate((names) => names.map((n) => performance.getEntriesByName(n)[0]?.startTime ?? NaN), ['frcds:token', 'frcds:assessment', 'frcds:curve']);
      const m = { token: token!, assessment: assessment!, curve: curve! };
      rows.push({ patient, round, tokenToAssessment: m.assessment - m.token, tokenToCurve: m.curve - m.token, tokenToHeatmap: heatAt === null ? null : heatAt - m.token, navToToken: m.token });
      await context.close();
    }
  }
} finally {
  await browser.close();
  await svc.stop();
}

const f = (x: number | null): string => (x === null ? '   –' : `${Math.round(x)}`.padStart(4));
process.stdout.write(`SMART app: first meaningful render after the token response (Chromium headless, 1024×768, ${new Date().toISOString()}, load average ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cores)\n`);
process.stdout.write('patient      round  nav→token  token→assessment  token→curve  token→heatmap (ms)\n');
for (const r of rows) process.stdout.write(`${r.patient.padEnd(12)} ${String(r.round).padStart(5)}  ${f(r.navToToken).padStart(9)}  ${f(r.tokenToAssessment).padStart(16)}  ${f(r.tokenToCurve).padStart(11)}  ${f(r.tokenToHeatmap).padStart(13)}\n`);
for (let round = 1; round <= rounds; round++) {
  const rs = rows.filter((r) => r.round === round);
  process.stdout.write(`round ${round}${round === 1 ? ' (cold assessments)' : ' (cached)'}: token→curve median ${Math.round(median(rs.map((r) => r.tokenToCurve)))} ms, max ${Math.round(Math.max(...rs.map((r) => r.tokenToCurve)))} ms (target ≤ 1500 ms)\n`);
}
const files = readdirSync(CLIENT_DIST).filter((n) => !n.startsWith('.'));
let raw = 0;
let gz = 0;
for (const n of files) {
  const b = readFileSync(join(CLIENT_DIST, n));
  raw += b.length;
  gz += gzipSync(b, { level: 9 }).length;
}
process.stdout.write(`bundle: ${(raw / 1024).toFixed(1)} KB raw, ${(gz / 1024).toFixed(1)} KB gzipped (${files.length} files; budget ${GZIP_BUDGET_BYTES / 1024} KB gzipped)\n`);
