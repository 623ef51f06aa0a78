/**
 * A minimal PNG encoder (8-bit greyscale or RGBA, no interlace, filter 0 on every row) for the heatmap overlay and
 * the display image. Hand-written with Node's zlib (deflate + crc32) rather than adding `pngjs`: the format needs
 * only the signature, IHDR, one IDAT and IEND chunks (PNG spec, ISO/IEC 15948 §5, §11.2), ~30 lines.
 */
import { crc32, deflateSync } from 'node:zlib';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td) >>> 0);
  return Buffer.concat([len, td, crc]);
}

/** Encodes `pixels` (row-major; 1 byte per pixel for 'grey', 4 for 'rgba') as a PNG file. */
export function encodePng(width: number, height: number, pixels: Uint8Array, kind: 'grey' | 'rgba'): Buffer {
  const channels = kind === 'grey' ? 1 : 4;
  if (pixels.length !== width * height * channels) throw new RangeError(`expected ${width * height * channels} bytes, got ${pixels.length}`);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = kind === 'grey' ? 0 : 6; // colour type
  ihdr[10] = 0;
  ihdr[11] = 0;
  ihdr[12] = 0;
  const stride = width * channels;
  const raw = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (stride + 1)] = 0; // filter type None
    raw.set(pixels.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  }
  return Buffer.concat([SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw, { level: 6 })), chunk('IEND', Buffer.alloc(0))]);
}

/**
 * A perceptually ordered colour map (dark purple → red → yellow), 256 entries, piecewise linear through five
 * anchor colours of the "inferno" look; values t ∈ [0, 1].
 */
const ANCHORS: [number, number, number, number][] = [
  [0.0, 0, 0, 4],
  [0.25, 87, 16, 110],
  [0.5, 188, 55, 84],
  [0.75, 249, 142, 9],
  [1.0, 252, 255, 164],
];
export function colourMap(t: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, t));
  for (let i = 1; i < ANCHORS.length; i++) {
    const [t1, r1, g1, b1] = ANCHORS[i]!;
    if (x <= t1) {
      const [t0, r0, g0, b0] = ANCHORS[i - 1]!;
      const f = (x - t0) / (t1 - t0);
      return [Math.round(r0 + f * (r1 - r0)), Math.round(g0 + f * (g1 - g0)), Math.round(b0 + f * (b1 - b0))];
    }
  }
  return [252, 255, 164];
}
