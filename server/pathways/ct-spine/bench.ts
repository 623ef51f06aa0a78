/**
 * Timings of the CT spine steps on a full-size synthetic volume (512 × 512 × N at 0.7 mm): volume assembly from
 * Int16 slices, localisation, L1 ROI, morphometry. Run: `node --import tsx server/pathways/ct-spine/bench.ts [sliceMm]`.
 */
import { measureTrabecularHu } from './l1-roi.ts';
import { measureMorphometry } from './morphometry.ts';
import { buildSpinePhantom, defaultLevels, DEFAULT_PHANTOM } from './phantom.ts';
import { localiseVertebrae } from './vertebrae.ts';
import { assembleVolume, type CtSlice } from './volume.ts';

const sliceMm = Number(process.argv[2] ?? 0.8);
const t0 = performance.now();
const { volume: phantom, truth } = buildSpinePhantom({ ...DEFAULT_PHANTOM, rows: 512, columns: 512, sliceMm, marginMm: 0, levels: defaultLevels(120) });
const tPhantom = performance.now() - t0;
const plane = phantom.rows * phantom.columns;
const slices: CtSlice[] = Array.from({ length: phantom.slices }, (_, k) => ({
  pm: { rows: 512, columns: 512, bitsAllocated: 16, bitsStored: 16, pixelRepresentation: 1, rescaleSlope: 1, rescaleIntercept: -1024, pixelSpacingMm: [0.7, 0.7] },
  stored: Int16Array.from(phantom.hu.subarray(k * plane, (k + 1) * plane), (v) => Math.round(v) + 1024),
  position: [0, 0, phantom.z[k]!],
  orientation: [1, 0, 0, 0, 1, 0],
}));
const time = <T>(f: () => T): [T, number] => {
  const s = performance.now();
  const r = f();
  return [r, performance.now() - s];
};
const [vol, tAssemble] = time(() => assembleVolume(slices));
const [loc, tLocalise] = time(() => localiseVertebrae(vol));
if ('refused' in loc) throw new Error(loc.reason);
const [roi, tRoi] = time(() => measureTrabecularHu(vol, loc, { phase: 'non-contrast' }));
const [morph, tMorph] = time(() => measureMorphometry(vol, loc));
console.log(
  JSON.stringify({
    size: [vol.columns, vol.rows, vol.slices],
    ms: { phantom: Math.round(tPhantom), assemble: Math.round(tAssemble), localise: Math.round(tLocalise), roi: Math.round(tRoi), morphometry: Math.round(tMorph) },
    labels: loc.vertebrae.map((v) => v.label).join(' '),
    truth: truth.map((t) => t.label).join(' '),
    l1: 'refused' in roi ? roi.reason : Math.round(roi.medianHu * 10) / 10,
    grades: 'refused' in morph ? morph.reason : morph.map((m) => m.grade).join(''),
  }),
);
