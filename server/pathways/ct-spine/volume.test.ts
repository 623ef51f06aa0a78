import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assembleVolume, planSlices, sliceAt, VolumeError, zRange, type CtSlice } from './volume.ts';

const AXIAL = [1, 0, 0, 0, 1, 0];

function slice(z: number, fill: number, over: Partial<CtSlice> & { rows?: number; spacing?: [number, number] } = {}): CtSlice {
  const rows = over.rows ?? 4;
  const stored = new Int16Array(rows * 4).fill(fill);
  return {
    pm: { rows, columns: 4, bitsAllocated: 16, bitsStored: 12, pixelRepresentation: 1, rescaleSlope: 1, rescaleIntercept: -1024, pixelSpacingMm: over.spacing ?? [0.7, 0.7] },
    stored,
    position: [0, 0, z],
    orientation: over.orientation ?? AXIAL,
  };
}

const code = (c: string) => (e: unknown) => e instanceof VolumeError && e.code === c;

describe('CT volume assembly', () => {
  it('orders slices inferior → superior, applies the modality LUT and masks unused bits', () => {
    const v = assembleVolume([slice(-2, 1100), slice(0, 1200), slice(-4, 1000)]);
    assert.deepEqual(Array.from(v.z), [-4, -2, 0]);
    assert.equal(v.hu[0], -24);
    assert.equal(v.hu[16], 76);
    assert.equal(v.hu[32], 176);
    assert.equal(v.spacing.slice, 2);
    assert.equal(v.rowsGoPosterior, true);
    // 12 bits stored, signed: 0x1000 | 5 is 5 once the unused high bits are sign-extended away
    const odd = assembleVolume([slice(0, 0x1000 | 5), slice(1, 5)]);
    assert.equal(odd.hu[0], 5 - 1024);
  });

  it('orders feet-first (normal pointing down) stacks by the head–foot coordinate too', () => {
    const flipped = [-1, 0, 0, 0, 1, 0]; // row × column = (0,0,-1)
    const v = assembleVolume([slice(0, 1000, { orientation: flipped }), slice(-1, 1001, { orientation: flipped }), slice(1, 1002, { orientation: flipped })]);
    assert.deepEqual(Array.from(v.z), [-1, 0, 1]);
    assert.equal(v.hu[0], 1001 - 1024);
  });

  it('refuses stacks that are not one regular volume', () => {
    assert.throws(() => assembleVolume([]), code('empty'));
    assert.throws(() => assembleVolume([slice(0, 0), slice(0, 0)]), code('duplicate-position'));
    assert.throws(() => assembleVolume([slice(0, 0), slice(1, 0), slice(2, 0), slice(4, 0)]), code('gap'));
    assert.throws(() => assembleVolume([slice(0, 0), slice(1, 0, { rows: 5 })]), code('inconsistent-size'));
    assert.throws(() => assembleVolume([slice(0, 0), slice(1, 0, { spacing: [0.8, 0.8] })]), code('inconsistent-spacing'));
    assert.throws(() => assembleVolume([slice(0, 0), slice(1, 0, { orientation: [1, 0, 0, 0, 0.995, 0.0998] })]), code('inconsistent-orientation'));
    assert.throws(() => assembleVolume([slice(0, 0, { orientation: [0, 1, 0, 0, 0, -1] })]), code('not-axial'));
  });

  it('finds slices by z and plans the fetch of a z-range with a margin', () => {
    const inst = Array.from({ length: 50 }, (_, i) => ({ position: [0, 0, 100 - 2 * i], orientation: AXIAL }));
    const v = { z: Float64Array.from({ length: 50 }, (_, i) => 2 * i + 2) };
    assert.equal(sliceAt(v, 10.9), 4);
    assert.equal(sliceAt(v, -50), 0);
    assert.deepEqual(zRange(v), { from: 2, to: 100 });
    // positions 100, 98, …, 2: [40, 46] covers z 40..46 (indices 30..27) and one more each side
    assert.deepEqual(planSlices(inst, { from: 46, to: 40 }), [31, 30, 29, 28, 27, 26]);
    assert.deepEqual(planSlices(inst, { from: 200, to: 300 }), []);
    assert.throws(() => planSlices([...inst, { position: [0, 0, 100], orientation: AXIAL }], { from: 0, to: 10 }), code('duplicate-position'));
  });
});
