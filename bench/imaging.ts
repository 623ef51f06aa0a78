/**
 * Imaging benchmark (`npm run bench:imaging`): time to get a full-size radiograph from a DICOMweb server into the
 * model's input tensor — WADO-RS metadata + frame fetch + decode + preprocessing — from the embedded sandbox
 * DICOMweb server and from a real PACS (Orthanc, started like the integration suite), plus local decode time per
 * transfer syntax. Target: median ≤ 60 ms end to end.
 *
 * Input: the largest radiograph in the committed demo cohort (a synthetic 2500 × 2048 image when the cohort is
 * absent), re-encoded in each syntax with the real encoders (bench/make_variants.py).
 * Options: --runs N (default 30), --no-orthanc.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import express from 'express';
import pino from 'pino';
import { decodeFrame, warmUpCodecs } from '../server/imaging/decode/index.ts';
import { parseDicomFile } from '../server/imaging/dicom.ts';
import { DicomWebClient } from '../server/imaging/dicomweb-client.ts';
import { lateralityOf, preprocessPixels, type PreprocessRecipe } from '../server/imaging/preprocess.ts';
import { fetchFrame } from '../server/imaging/retrieve.ts';
import { createDicomWebRouter } from '../server/sandbox/dicomweb/router.ts';
import { demoCohortFiles, REPO } from '../test/support/dicom-fixtures.ts';
import { orthancBinary, startOrthanc } from '../test/support/orthanc.ts';

const args = process.argv.slice(2);
const RUNS = Number(args[args.indexOf('--runs') + 1]) || 30;
const WITH_ORTHANC = !args.includes('--no-orthanc');

function recipe(): { recipe: PreprocessRecipe; source: string } {
  const manifest = join(REPO, 'models/hip-xray-v1/manifest.json');
  if (existsSync(manifest)) {
    const m = JSON.parse(readFileSync(manifest, 'utf8')) as { preprocessing?: PreprocessRecipe; preprocess?: PreprocessRecipe };
    const r = m.preprocessing ?? m.preprocess;
    if (r?.constants) return { recipe: r, source: 'models/hip-xray-v1/manifest.json' };
  }
  return { recipe: JSON.parse(readFileSync(join(REPO, 'test/fixtures/preprocess/recipe.json'), 'utf8')) as PreprocessRecipe, source: 'test/fixtures/preprocess/recipe.json (frcds RECIPE)' };
}

function stats(xs: number[]): { median: number; p95: number } {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]!;
  return { median: q(0.5), p95: q(0.95) };
}

const fmt = (n: number) => n.toFixed(1).padStart(7);

function largestDemoFile(): string | undefined {
  let best: { p: string; n: number } | undefined;
  for (const p of demoCohortFiles()) {
    const f = parseDicomFile(readFileSync(p), { untilTag: 'x7fe00010' });
    const n = (f.dataSet.uint16('x00280010') ?? 0) * (f.dataSet.uint16('x00280011') ?? 0);
    if (!best || n > best.n) best = { p, n };
  }
  return best?.p;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'frcds-bench-'));
  const cleanups: (() => Promise<void>)[] = [async () => rmSync(dir, { recursive: true, force: true })];
  try {
    const source = largestDemoFile();
    const { recipe: rc, source: recipeSource } = recipe();
    execFileSync('sh', [join(REPO, 'models/training/run'), join(REPO, 'bench/make_variants.py'), dir, ...(source ? [source] : [])], { stdio: 'inherit' });
    const variants = readdirSync(dir).filter((f) => f.endsWith('.dcm')).sort();
    const files = variants.map((v) => ({ name: basename(v, '.dcm'), path: join(dir, v), file: parseDicomFile(readFileSync(join(dir, v))) }));
    const pm0 = files[0]!.file.pixelModule;
    const sourceSyntax = source ? parseDicomFile(readFileSync(source), { untilTag: 'x00020010' }).transferSyntaxUid : undefined;
    const primary = files.find((f) => f.file.transferSyntaxUid === sourceSyntax) ?? files.find((f) => f.name === 'explicit-le')!;
    console.log(`\nImaging benchmark — ${pm0.rows} × ${pm0.columns}, ${pm0.bitsStored}-bit, source: ${source ? source.slice(REPO.length + 1) : 'synthetic (demo cohort absent)'}`);
    console.log(`recipe: ${recipeSource}; ${RUNS} timed runs after 3 warm-up runs; node ${process.version}; ${cpus().length} CPUs, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}\n`);
    await warmUpCodecs();

    // ---- local decode per syntax --------------------------------------------------------------------------------
    console.log('Local decode of one frame (parse + frame + decode), ms');
    console.log('syntax                          median     p95     cpu');
    for (const f of files) {
      const bytes = readFileSync(f.path);
      const times: number[] = [];
      const cpu: number[] = [];
      for (let i = 0; i < RUNS + 3; i++) {
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        const d = parseDicomFile(bytes);
        await decodeFrame(d.transferSyntaxUid, d.frame(0), d.pixelModule);
        const c = process.cpuUsage(c0);
        if (i >= 3) {
          times.push(performance.now() - t0);
          cpu.push((c.user + c.system) / 1000);
        }
      }
      const s = stats(times);
      console.log(`${`${f.name} (${f.file.transferSyntaxUid.replace('1.2.840.10008.', '…')})`.padEnd(30)}${fmt(s.median)} ${fmt(s.p95)} ${fmt(stats(cpu).median)}`);
    }
    {
      const f = files.find((x) => x.name === 'explicit-le')!;
      const stored = await decodeFrame(f.file.transferSyntaxUid, f.file.frame(0), f.file.pixelModule);
      const times: number[] = [];
      for (let i = 0; i < RUNS + 3; i++) {
        const t0 = performance.now();
        preprocessPixels({ stored, pixelModule: f.file.pixelModule, laterality: 'L' }, rc);
        if (i >= 3) times.push(performance.now() - t0);
      }
      const s = stats(times);
      console.log(`${'preprocess only (L hip)'.padEnd(30)}${fmt(s.median)} ${fmt(s.p95)}`);
    }

    // ---- servers ------------------------------------------------------------------------------------------------
    const servers: { name: string; client: DicomWebClient }[] = [];
    const { router } = await createDicomWebRouter({ dicomDir: dir, logger: pino({ level: 'silent' }) });
    const app = express();
    app.use('/dicom-web', router);
    const http = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    cleanups.push(() => new Promise((r) => http.close(() => r())));
    const addr = http.address();
    servers.push({ name: 'embedded', client: new DicomWebClient({ baseUrl: `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/dicom-web` }) });
    if (WITH_ORTHANC && orthancBinary()) {
      const o = await startOrthanc();
      cleanups.push(() => o.stop());
      const client = new DicomWebClient({ baseUrl: o.dicomWebUrl, auth: { type: 'basic', username: o.username, password: o.password }, timeoutMs: 60_000 });
      await client.store(files.map((f) => readFileSync(f.path)));
      servers.push({ name: 'Orthanc', client });
    } else if (WITH_ORTHANC) {
      console.log('\n!! Orthanc is not installed: only the embedded server is measured (npm run setup installs it).');
    }

    console.log('\nEnd to end: WADO-RS metadata + frame (transfer-syntax=*) + decode + preprocess, ms');
    console.log('(cpu = this process\'s CPU time per run: client, plus the embedded server when it is the server; a load-independent view)');
    console.log('server    syntax                 median     p95 | fetch  decode  prep (medians) |  cpu');
    const summary: string[] = [];
    for (const srv of servers) {
      for (const f of files) {
        const ref = { studyUid: f.file.studyInstanceUid, seriesUid: f.file.seriesInstanceUid, sopUid: f.file.sopInstanceUid };
        const total: number[] = [];
        const fetchT: number[] = [];
        const decodeT: number[] = [];
        const prepT: number[] = [];
        const cpuT: number[] = [];
        for (let i = 0; i < RUNS + 3; i++) {
          const c0 = process.cpuUsage();
          const t0 = performance.now();
          const fr = await fetchFrame(srv.client, ref);
          const t1 = performance.now();
          preprocessPixels({ stored: fr.stored, pixelModule: fr.pixelModule, laterality: lateralityOf(fr.metadata) }, rc);
          const t2 = performance.now();
          const c = process.cpuUsage(c0);
          if (i < 3) continue;
          cpuT.push((c.user + c.system) / 1000);
          total.push(t2 - t0);
          fetchT.push(fr.timings.metadataMs + fr.timings.frameMs);
          decodeT.push(fr.timings.decodeMs);
          prepT.push(t2 - t1);
        }
        const s = stats(total);
        const line = `${srv.name.padEnd(10)}${f.name.padEnd(20)}${fmt(s.median)} ${fmt(s.p95)} |${fmt(stats(fetchT).median)}${fmt(stats(decodeT).median)}${fmt(stats(prepT).median)} |${fmt(stats(cpuT).median)}`;
        console.log(line);
        if (f === primary) {
          summary.push(`${srv.name}: median ${s.median.toFixed(1)} ms, p95 ${s.p95.toFixed(1)} ms (${f.name}, ${source ? "the demo file's stored syntax" : 'synthetic image'}) — target median ≤ 60 ms: ${s.median <= 60 ? 'MET' : 'MISSED'}`);
        }
      }
    }
    console.log(`\n${summary.join('\n')}`);
  } finally {
    for (const c of cleanups.reverse()) await c();
  }
}

await main();
