import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inflateSync } from 'node:zlib';
import { isRefusal } from '../types.ts';
import { analyseCtVolume } from './analyse.ts';
import { roiGeometry } from './l1-roi.ts';
import { GRADE_COLOUR, renderCtOverlays } from './overlay.ts';
import { buildSpinePhantom, defaultLevels, DEFAULT_PHANTOM } from './phantom.ts';
import type { CtFindings } from './types.ts';

/** RGBA pixels of a PNG written by encodePng (one IDAT, filter 0 on every row). */
function decodeRgba(png: Buffer): { width: number; height: number; px: Uint8Array } {
  const width = png.readUInt32BE(16);
  const height = png.readUInt32BE(20);
  let o = 8;
  const idat: Buffer[] = [];
  while (o < png.length) {
    const len = png.readUInt32BE(o);
    if (png.toString('ascii', o + 4, o + 8) === 'IDAT') idat.push(png.subarray(o + 8, o + 8 + len));
    o += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const px = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) px.set(raw.subarray(y * (width * 4 + 1) + 1, (y + 1) * (width * 4 + 1)), y * width * 4);
  return { width, height, px };
}

const isCyan = (px: Uint8Array, i: number): boolean => px[i] === 0 && px[i + 1] === 220 && px[i + 2] === 255;

function wedgePhantom() {
  const levels = defaultLevels(100).map((l) => (l.label === 'L1' ? { ...l, anteriorFraction: 0.7 } : l));
  const { volume } = buildSpinePhantom({ ...DEFAULT_PHANTOM, rows: 160, sliceMm: 1, levels });
  const f = analyseCtVolume(volume, { phase: 'non-contrast', phaseRecorded: false });
  assert.ok(!isRefusal(f));
  return { volume, f: f as CtFindings };
}

describe('CT overlays', () => {
  const { volume, f } = wedgePhantom();
  const o = renderCtOverlays(volume, f);

  it('renders square-mm PNGs of the stated size covering the volume (sagittal height = z extent at 0.5 mm)', () => {
    for (const img of [o.sagittal, o.axial]) {
      const d = decodeRgba(img.png);
      assert.deepEqual([d.width, d.height], [img.width, img.height]);
    }
    const zExtent = volume.z[volume.slices - 1]! - volume.z[0]! + volume.spacing.slice;
    assert.equal(o.sagittal.height, Math.round(zExtent / 0.5));
    assert.deepEqual([o.axial.width, o.axial.height], [320, 320]);
  });

  it('draws the ROI ellipse on the axial slice around its centre, not inside it', () => {
    const d = decodeRgba(o.axial.png);
    const g = roiGeometry(volume, f.geometry.box, f.geometry.midlineColumn, f.levels.find((l) => l.label === 'L1')!);
    // axial crop: 160 mm square centred on the midline column and 20 mm behind the body centre, 0.5 mm pixels
    const rowCentre = (f.geometry.box.r0 + f.geometry.box.r1) / 2 + 20 / volume.spacing.row;
    const cx = Math.round(80 / 0.5 - 0.5);
    const cy = Math.round(((g.rowCentre - rowCentre) * volume.spacing.row + 80) / 0.5 - 0.5);
    const ax = (g.columnSemiAxis * volume.spacing.column) / 0.5;
    let onRim = 0;
    for (let x = Math.floor(cx - ax - 2); x <= Math.ceil(cx + ax + 2); x++) if (isCyan(d.px, (cy * d.width + x) * 4)) onRim++;
    assert.ok(onRim >= 2, `cyan pixels on the ROI row: ${onRim}`);
    assert.ok(!isCyan(d.px, (cy * d.width + cx) * 4), 'the ROI centre shows the image, not ink');
  });

  it('writes the grade in the grade colour and labels each level (ink in the text panel)', () => {
    const d = decodeRgba(o.sagittal.png);
    const count = (c: readonly number[]): number => {
      let n = 0;
      for (let i = 0; i < d.px.length; i += 4) if (d.px[i] === c[0] && d.px[i + 1] === c[1] && d.px[i + 2] === c[2]) n++;
      return n;
    };
    assert.equal(f.worstGrade, 2);
    assert.ok(count(GRADE_COLOUR[2]) > 200, 'the grade-2 level is drawn in orange');
    assert.ok(count(GRADE_COLOUR[0]) > 1000, 'the unfractured levels are drawn in green');
    assert.equal(count(GRADE_COLOUR[3]), 0);
    assert.ok(count([0, 220, 255]) > 50, 'the ROI is drawn on the sagittal too');
  });

  it('is deterministic', () => {
    const again = renderCtOverlays(volume, f);
    assert.ok(again.sagittal.png.equals(o.sagittal.png));
    assert.ok(again.axial.png.equals(o.axial.png));
  });
});
