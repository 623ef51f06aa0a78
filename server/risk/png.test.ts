/** The hand-written PNG encoder: structure, CRCs and pixel rows decoded back with zlib. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { crc32, inflateSync } from 'node:zlib';
import { colourMap, encodePng } from './png.ts';

function chunks(png: Buffer): { type: string; data: Buffer }[] {
  const out: { type: string; data: Buffer }[] = [];
  let o = 8;
  while (o < png.length) {
    const len = png.readUInt32BE(o);
    const type = png.subarray(o + 4, o + 8).toString('ascii');
    const data = png.subarray(o + 8, o + 8 + len);
    assert.equal(png.readUInt32BE(o + 8 + len), crc32(png.subarray(o + 4, o + 8 + len)) >>> 0, `${type} CRC`);
    out.push({ type, data });
    o += 12 + len;
  }
  return out;
}

describe('PNG encoder', () => {
  test('grey and RGBA images round-trip through IHDR/IDAT/IEND with valid CRCs', () => {
    for (const [kind, ch, ct] of [['grey', 1, 0], ['rgba', 4, 6]] as const) {
      const w = 7;
      const h = 5;
      const px = Uint8Array.from({ length: w * h * ch }, (_, i) => (i * 37) % 256);
      const png = encodePng(w, h, px, kind);
      const cs = chunks(png);
      assert.deepEqual(cs.map((c) => c.type), ['IHDR', 'IDAT', 'IEND']);
      assert.equal(cs[0]!.data.readUInt32BE(0), w);
      assert.equal(cs[0]!.data.readUInt32BE(4), h);
      assert.equal(cs[0]!.data[9], ct);
      const raw = inflateSync(cs[1]!.data);
      for (let y = 0; y < h; y++) {
        assert.equal(raw[y * (w * ch + 1)], 0);
        assert.deepEqual([...raw.subarray(y * (w * ch + 1) + 1, (y + 1) * (w * ch + 1))], [...px.subarray(y * w * ch, (y + 1) * w * ch)]);
      }
    }
    assert.throws(() => encodePng(2, 2, new Uint8Array(3), 'grey'), RangeError);
  });

  test('colour map runs dark to bright', () => {
    const lum = (t: number) => {
      const [r, g, b] = colourMap(t);
      return 0.299 * r + 0.587 * g + 0.114 * b;
    };
    for (let k = 0; k < 10; k++) assert.ok(lum((k + 1) / 10) > lum(k / 10), `step ${k}`);
  });
});
