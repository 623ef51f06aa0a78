/**
 * Imaging benchmark (`npm run bench:imaging`): time to get a full-size radiograph from a DICOMweb server into the
 * model's input tensor — WADO-RS metadata + frame fetch + decode + preprocessing — from the embedded sandbox
 * DICOMweb server and from a real PACS (Orthanc, started like the integration suite), plus local decode time per
 * transfer syntax. Target: median ≤ 60 ms end to end.
 *
 * Input: the largest radiograph in the committed demo cohort (a synthetic 2500 × 2048 image when the cohort is
 * absent), re-encoded in each syntax with the real encoders (bench/make_variants.py).
 *
 * Reduced-resolution decode (server/imaging/decode/resolution.ts): per syntax, the decode at the resolution the
 * model needs (decodeFrameAt with the manifest's need) against the full decode of the same frame, timed in the
 * same run, alternating, as a ratio. Only JPEG 2000 has a reduced path; the other codecs decode in full (ratio ≈ 1).
 * `--effect`: what the reduced decode changes in the outputs — every demo-cohort radiograph re-encoded as JPEG
 * 2000 (opj_compress, lossless, its default 5 decompositions), decoded in full and reduced, preprocessed and run
 * through the model: preprocessed-tensor difference, 10-year risk differences, quality-check and OOD changes.
 * Options: --runs N (default 30), --no-orthanc, --effect, --effect-only.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import express from 'express';
import pino from 'pino';
import { decodeFrame, decodeFrameAt, DISPLAY_LONGEST_SIDE, resolutionNeedOf, warmUpCodecs, type ResolutionNeed } from '../server/imaging/decode/index.ts';
import { TS } from '../server/imaging/transfer-syntax.ts';
import { ModelRegistry } from '../server/inference/registry.ts';
import { checkImageQuality } from '../server/risk/quality.ts';
import { baselineAt, riskFrom } from '../server/risk/survival.ts';
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
const EFFECT_ONLY = args.includes('--effect-only');
const EFFECT = EFFECT_ONLY || args.includes('--effect');

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

interface EffectRow {
  file: string;
  level: number;
  meanAbs: number;
  dEta: [number, number];
  dRisk: [number, number];
  qualityFlips: string[];
  oodFlip: boolean;
}

/**
 * What decoding at a reduced JPEG 2000 resolution changes downstream, on every demo-cohort radiograph re-encoded as
 * JPEG 2000 (lossless, so the full decode equals the stored pixels): for each rule variant, the preprocessed
 * tensor's mean |Δ|, the member-mean log-hazard and 10-year risk differences (clinical input: the parity set's
 * first row, the same for all images — the image term is additive on the log-hazard, so Δη does not depend on it),
 * quality checks that change verdict and OOD verdict changes.
 */
async function effectStudy(rc: PreprocessRecipe, dir: string): Promise<void> {
  const registry = await ModelRegistry.load({ modelsDir: join(REPO, 'models'), device: 'cpu', threads: 2, maxBatch: 1, maxWaitMs: 0 }, pino({ level: 'silent' }));
  try {
    const model = registry.list().find((m) => m.id === 'hip-xray-v1');
    if (!model) throw new Error('models/hip-xray-v1 did not load');
    const man = model.manifest;
    const clinBytes = readFileSync(join(REPO, 'models/hip-xray-v1/parity/input-clinical.f32'));
    const clinical = [...new Float32Array(clinBytes.buffer.slice(clinBytes.byteOffset, clinBytes.byteOffset + 8))];
    const bh = man.risk_model.baseline_cumulative_hazard;
    const h0 = man.outcomes.map((o) => baselineAt(bh.grid_years, bh[o.id]!, 10));
    const S = rc.constants.S;
    const base = resolutionNeedOf(rc.constants);
    const variants: { name: string; need: ResolutionNeed }[] = [
      { name: 'service rule (≥ 2 px per bin, longest side ≥ 512)', need: base },
      { name: 'no display limit (≥ 2 px per bin)', need: { ...base, minLongestSide: 1 } },
      { name: 'no margins (≥ 1 px per bin, no display limit)', need: { ...base, minPixelsPerBin: 1, minLongestSide: 1 } },
    ];
    const rows = new Map<string, EffectRow[]>(variants.map((v) => [v.name, []]));
    const files = demoCohortFiles();
    const t0 = performance.now();
    for (const path of files) {
      const file = parseDicomFile(readFileSync(path));
      const pm = file.pixelModule;
      const stored = await decodeFrame(file.transferSyntaxUid, file.frame(0), pm);
      const raw = join(dir, 'effect.rawl');
      const j2k = join(dir, 'effect.j2k');
      const u16 = new Uint16Array(stored.length);
      const mask = 2 ** pm.bitsStored - 1;
      for (let i = 0; i < stored.length; i++) u16[i] = stored[i]! & mask;
      writeFileSync(raw, new Uint8Array(u16.buffer));
      execFileSync('opj_compress', ['-i', raw, '-o', j2k, '-F', `${pm.columns},${pm.rows},1,${pm.bitsStored},u`], { stdio: 'ignore' });
      const code = new Uint8Array(readFileSync(j2k));
      const laterality = file.string('00200062') ?? file.string('00200060');
      const run = async (st: typeof stored, p: typeof pm) => {
        const working = preprocessPixels({ stored: st, pixelModule: p, laterality }, rc);
        const out = await model.infer({ image: working, clinical });
        const eta = man.outcomes.map((o) => out.logHazard.reduce((a, m) => a + m[o.index]!, 0) / out.logHazard.length);
        const quality = checkImageQuality(st, p, working, S, laterality);
        return { working, eta, quality, ood: out.oodDistance > man.ood.threshold };
      };
      const full = await run(stored, pm);
      for (const v of variants) {
        const r = await decodeFrameAt(TS.jpeg2000Lossless, code, pm, v.need);
        const red = r.level === 0 ? full : await run(r.stored, r.pixelModule);
        let mad = 0;
        for (let i = 0; i < red.working.length; i++) mad += Math.abs(red.working[i]! - full.working[i]!);
        const dRisk = man.outcomes.map((o, k) => 100 * (riskFrom(h0[k]!, red.eta[k]!) - riskFrom(h0[k]!, full.eta[k]!)));
        rows.get(v.name)!.push({
          file: path.slice(REPO.length + 1),
          level: r.level,
          meanAbs: mad / red.working.length,
          dEta: [red.eta[0]! - full.eta[0]!, red.eta[1]! - full.eta[1]!],
          dRisk: [dRisk[0]!, dRisk[1]!],
          qualityFlips: full.quality.filter((q, i) => q.passed !== red.quality[i]!.passed).map((q) => `${q.check}:${q.passed ? 'pass→fail' : 'fail→pass'}`),
          oodFlip: full.ood !== red.ood,
        });
      }
    }
    console.log(`\nEffect of the reduced decode on the outputs — ${files.length} demo-cohort radiographs as JPEG 2000 (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    console.log('(Δ = reduced − full; η = member-mean log-hazard; risk = 10-year risk in percentage points; |max| over images)');
    for (const v of variants) {
      const all = rows.get(v.name)!;
      const red = all.filter((r) => r.level > 0);
      const levels = [...new Set(red.map((r) => r.level))].sort().join(', ') || '—';
      const maxAbs = (f: (r: EffectRow) => number) => red.reduce((a, r) => Math.max(a, Math.abs(f(r))), 0);
      const meanAbs = (f: (r: EffectRow) => number) => (red.length ? red.reduce((a, r) => a + Math.abs(f(r)), 0) / red.length : 0);
      console.log(`\n${v.name}: ${red.length} of ${all.length} images reduced (levels ${levels})`);
      if (red.length === 0) continue;
      console.log(`  preprocessed tensor mean |Δ|: mean ${meanAbs((r) => r.meanAbs).toFixed(4)}, max ${maxAbs((r) => r.meanAbs).toFixed(4)} (parity tolerance 0.001)`);
      console.log(`  |Δη| hip: mean ${meanAbs((r) => r.dEta[0]).toFixed(4)}, max ${maxAbs((r) => r.dEta[0]).toFixed(4)};  MOF: mean ${meanAbs((r) => r.dEta[1]).toFixed(4)}, max ${maxAbs((r) => r.dEta[1]).toFixed(4)}`);
      console.log(`  |Δ 10-y risk| hip: mean ${meanAbs((r) => r.dRisk[0]).toFixed(3)} pp, max ${maxAbs((r) => r.dRisk[0]).toFixed(3)} pp;  MOF: mean ${meanAbs((r) => r.dRisk[1]).toFixed(3)} pp, max ${maxAbs((r) => r.dRisk[1]).toFixed(3)} pp`);
      const flips = red.flatMap((r) => r.qualityFlips);
      console.log(`  quality verdicts changed: ${flips.length}${flips.length ? ` (${flips.join(', ')})` : ''}; OOD verdicts changed: ${red.filter((r) => r.oodFlip).length}`);
    }
  } finally {
    await registry.close();
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'frcds-bench-'));
  const cleanups: (() => Promise<void>)[] = [async () => rmSync(dir, { recursive: true, force: true })];
  try {
    const source = largestDemoFile();
    const { recipe: rc, source: recipeSource } = recipe();
    if (EFFECT_ONLY) {
      await effectStudy(rc, dir);
      return;
    }
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

    // ---- reduced-resolution decode vs full decode, per syntax (same run, alternating) ------------------------------
    const need = resolutionNeedOf(rc.constants);
    console.log(`\nReduced-resolution decode (what a ${need.size} px working image from a ${need.fovMm} mm field and a ${DISPLAY_LONGEST_SIDE} px display need) vs full decode, ms`);
    console.log('(wall = elapsed; cpu = this process\'s CPU time, the load-independent view on a shared machine)');
    console.log('syntax                          level  size        full wall  reduced wall  ratio |  full cpu  reduced cpu  ratio');
    const ratioRows: string[] = [];
    for (const f of files) {
      const bytes = readFileSync(f.path);
      const full: number[] = [];
      const reduced: number[] = [];
      const fullCpu: number[] = [];
      const reducedCpu: number[] = [];
      let level = 0;
      let size = '';
      for (let i = 0; i < RUNS + 3; i++) {
        const d = parseDicomFile(bytes);
        // Alternate which goes first so neither profits from a warmer cache.
        for (const which of i % 2 === 0 ? (['full', 'reduced'] as const) : (['reduced', 'full'] as const)) {
          const c0 = process.cpuUsage();
          const t0 = performance.now();
          const r = await decodeFrameAt(d.transferSyntaxUid, d.frame(0), d.pixelModule, which === 'reduced' ? need : undefined);
          const ms = performance.now() - t0;
          const c = process.cpuUsage(c0);
          if (which === 'reduced') {
            level = r.level;
            size = `${r.pixelModule.rows}×${r.pixelModule.columns}`;
          }
          if (i >= 3) {
            (which === 'full' ? full : reduced).push(ms);
            (which === 'full' ? fullCpu : reducedCpu).push((c.user + c.system) / 1000);
          }
        }
      }
      const fm = stats(full).median;
      const rm = stats(reduced).median;
      const fc = stats(fullCpu).median;
      const rcpu = stats(reducedCpu).median;
      const ratio = (a: number, b: number) => (b > 0.05 ? (a / b).toFixed(3) : '  —  ');
      const label = `${f.name} (${f.file.transferSyntaxUid.replace('1.2.840.10008.', '…')})`.padEnd(30);
      console.log(`${label}${String(level).padStart(6)}  ${size.padEnd(10)}${fmt(fm)}    ${fmt(rm)}   ${ratio(rm, fm).padStart(6)} | ${fmt(fc)}    ${fmt(rcpu)}  ${ratio(rcpu, fc).padStart(6)}${level === 0 ? '  (full decode: no reduced path)' : ''}`);
      ratioRows.push(`${f.name}: level ${level}, reduced/full ${ratio(rm, fm)} wall, ${ratio(rcpu, fc)} cpu`);
    }
    console.log(`\nreduced/full per syntax — ${ratioRows.join('; ')}`);
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
    if (EFFECT) await effectStudy(rc, dir);
  } finally {
    for (const c of cleanups.reverse()) await c();
  }
}

await main();
