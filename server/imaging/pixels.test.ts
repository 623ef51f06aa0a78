import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PixelModule } from './pixel-module.ts';
import { invertMonochrome1, maskStored, modalityValues } from './pixels.ts';

const pm = (o: Partial<PixelModule>): PixelModule => ({
  rows: 1, columns: 4, samplesPerPixel: 1, bitsAllocated: 16, bitsStored: 12, highBit: 11, pixelRepresentation: 0,
  photometricInterpretation: 'MONOCHROME2', planarConfiguration: 0, numberOfFrames: 1, rescaleSlope: 1, rescaleIntercept: 0, ...o,
});

describe('pixel values', () => {
  it('clears bits above BitsStored (overlay bits in old files) for unsigned data', () => {
    assert.deepEqual(Array.from(maskStored(new Uint16Array([0xf001, 0x0fff, 0x1000, 5]), pm({}))), [1, 4095, 0, 5]);
  });

  it('sign-extends signed data from BitsStored', () => {
    const stored = new Int16Array([0x0fff, 0x0800, 0x07ff, 0x0001]);
    assert.deepEqual(Array.from(maskStored(stored, pm({ pixelRepresentation: 1 }))), [-1, -2048, 2047, 1]);
  });

  it('leaves full-width data alone', () => {
    const s = new Uint16Array([65535, 0]);
    assert.equal(maskStored(s, pm({ bitsStored: 16, highBit: 15 })), s);
  });

  it('applies the modality LUT in float64 and inverts MONOCHROME1', () => {
    const p = pm({ rescaleSlope: 0.5, rescaleIntercept: -1024, photometricInterpretation: 'MONOCHROME1' });
    const img = modalityValues(new Uint16Array([0, 1, 2048, 4095]), p);
    assert.deepEqual(Array.from(img.data), [-1024, -1023.5, 0, 1023.5]);
    assert.deepEqual(Array.from(invertMonochrome1(img, p).data), [1024, 1023.5, -0, -1023.5]);
    // range mode: v → (min + max) − v over the representable modality range [-1024, 1023.5]
    assert.deepEqual(Array.from(invertMonochrome1(img, p, 'range').data), [1023.5, 1023, -0.5, -1024]);
    assert.equal(invertMonochrome1(img, pm({})), img, 'MONOCHROME2 untouched');
  });
});
