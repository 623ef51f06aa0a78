/**
 * Heatmap geometry: a CAM made from the PREPROCESSED image itself (16×16 block means of the model input) must,
 * once mapped back by renderHeatmap, line up with the radiograph in the display PNG — for a left hip (mirrored by
 * the preprocessing) and a right hip. A wrong mirror or offset drops the correlation (checked as well).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { inflateSync } from 'node:zlib';
import { REPO_ROOT } from '../config.ts';
import { decodeFrame } from '../imaging/decode/index.ts';
import { parseDicomFile } from '../imaging/dicom.ts';
import { checkRecipe, preprocessPixels, type PreprocessRecipe } from '../imaging/preprocess.ts';
import { renderHeatmap } from './heatmap.ts';

const recipe = (JSON.parse(readFileSync(join(REPO_ROOT, 'test/fixtures/models/hip-xray-smoke/manifest.json'), 'utf8')) as { preprocessing: PreprocessRecipe }).preprocessing;
const truth = (JSON.parse(readFileSync(join(REPO_ROOT, 'server/sandbox/demo-cohort/truth.json'), 'utf8')) as { patients: { patient_id: string; dicom: { path: string }; image: { laterality?: string; acquisition?: { laterality?: string } } }[] }).patients;

/** Decodes our own PNG (filter 0 rows) to its channel bytes. */
function pngPixels(png: Buffer): { w: number; h: number; ch: number; data: Uint8Array } {
  const w = png.readUInt32BE(16);
  const h = png.readUInt32BE(20);
  const ch = png[25] === 6 ? 4 : 1;
  let o = 33;
  const idat: Buffer[] = [];
  while (o < png.length) {
    const len = png.readUInt32BE(o);
    if (png.subarray(o + 4, o + 8).toString() === 'IDAT') idat.push(png.subarray(o + 8, o + 8 + len));
    o += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const data = new Uint8Array(w * h * ch);
  for (let y = 0; y < h; y++) data.set(raw.subarray(y * (w * ch + 1) + 1, (y + 1) * (w * ch + 1)), y * w * ch);
  return { w, h, ch, data };
}

function correlation(a: number[], b: number[]): number {
  const n = a.length;
  const ma = a.reduce((s, x) => s + x, 0) / n;
  const mb = b.reduce((s, x) => s + x, 0) / n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i]! - ma) * (b[i]! - mb);
    saa += (a[i]! - ma) ** 2;
    sbb += (b[i]! - mb) ** 2;
  }
  return sab / Math.sqrt(saa * sbb);
}

async function corrFor(path: string, mirrorCam: boolean): Promise<{ corr: number; laterality: string | undefined }> {
  const file = parseDicomFile(readFileSync(join(REPO_ROOT, 'server/sandbox/demo-cohort', path)));
  const pm = file.pixelModule;
  const stored = await decodeFrame(file.transferSyntaxUid, file.frame(0), pm);
  const laterality = file.string('00200062') ?? file.string('00200060');
  const working = preprocessPixels({ stored, pixelModule: pm, laterality }, recipe);
  const S = checkRecipe(recipe).S;
  const cam = new Float32Array(256);
  for (let i = 0; i < S; i++) for (let j = 0; j < S; j++) {
    const jj = mirrorCam ? S - 1 - j : j;
    cam[Math.floor(i / 8) * 16 + Math.floor(jj / 8)]! += Math.max(0, working[i * S + j]!) / 64;
  }
  const r = renderHeatmap({ stored, pixelModule: pm, laterality, constants: checkRecipe(recipe), cam, grid: [16, 16] });
  const disp = pngPixels(r.display());
  const over = pngPixels(r.overlay());
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < disp.w * disp.h; i++) {
    if (over.data[i * 4 + 3]! === 0) continue; // outside the model window or below the display cut-off
    a.push(over.data[i * 4 + 3]!);
    b.push(pm.photometricInterpretation === 'MONOCHROME1' ? 255 - disp.data[i]! : disp.data[i]!);
  }
  return { corr: correlation(a, b), laterality };
}

describe('heatmap geometry', () => {
  test('the CAM maps back onto the same anatomy for left and right hips; a mirrored CAM does not', async () => {
    const seen = new Set<string>();
    for (const p of truth.slice(0, 12)) {
      const { corr, laterality } = await corrFor(p.dicom.path, false);
      if (!laterality || seen.has(laterality)) continue;
      seen.add(laterality);
      const mirrored = await corrFor(p.dicom.path, true);
      assert.ok(corr > 0.6, `${p.patient_id} (${laterality}): correlation ${corr.toFixed(2)}`);
      assert.ok(corr > mirrored.corr + 0.15, `${p.patient_id} (${laterality}): aligned ${corr.toFixed(2)} vs mirrored ${mirrored.corr.toFixed(2)}`);
    }
    assert.deepEqual([...seen].sort(), ['L', 'R']);
  });
});
