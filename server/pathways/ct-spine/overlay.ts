/**
 * The pictures a reader checks the CT findings against: a mid-sagittal reformat with the level labels, each measured
 * level's anterior / middle / posterior heights drawn where they were measured and its grade written beside it, and
 * the attenuation ROI; and an axial slice through the ROI with the ROI drawn and its median HU written.
 *
 * Display: bone window W 1500 / L 300 (trabecular bone mid-grey, cortex and end plates white, soft tissue dark),
 * resampled to square 0.5 mm pixels (linear interpolation; thick slices look soft, not stair-stepped), cropped to
 * the spine: 40 mm in front of the body to 70 mm behind it (posterior elements) on the sagittal, a 160 mm square
 * around the body on the axial. Anterior is on the left of the sagittal (radiological convention), the patient's
 * right on the left of the axial. Colours: level labels white, heights and grade green (grade 0), yellow (1),
 * orange (2), red (3); ROI cyan. Text is drawn with a hand-written 5 × 7 bitmap font (below), because the dependency
 * list has no image or font library and the labels must be pixels in the PNG (the card and the FHIR attachment
 * show the PNG as it is, without an HTML layer).
 */
import { encodePng } from '../../risk/png.ts';
import { roiGeometry } from './l1-roi.ts';
import { DEFAULT_MORPHOMETRY, levelBody, sagittalHeights } from './morphometry.ts';
import type { CtFindings, GenantGrade } from './types.ts';
import { sliceAt, type CtVolume } from './volume.ts';

export interface OverlayImage {
  png: Buffer;
  width: number;
  height: number;
}

/** Output pixel size (mm). */
const PIXEL_MM = 0.5;
const WINDOW = { width: 1500, level: 300 };
const TEXT_SCALE = 2;

type Rgb = readonly [number, number, number];
const WHITE: Rgb = [255, 255, 255];
const CYAN: Rgb = [0, 220, 255];
export const GRADE_COLOUR: Readonly<Record<GenantGrade, Rgb>> = { 0: [60, 220, 90], 1: [255, 230, 0], 2: [255, 140, 0], 3: [255, 40, 40] };
const SHAPE: Record<string, string> = { wedge: 'WEDGE', biconcave: 'BICONCAVE', crush: 'CRUSH', none: '' };

/**
 * 5 × 7 glyphs: seven rows of five columns, '#' = ink, rows separated by '|'; capitals, digits and the few signs
 * the labels use. Lower-case text is drawn in capitals; a character without a glyph is drawn as a space.
 */
const GLYPHS: Record<string, string> = {
  A: '.###.|#...#|#...#|#####|#...#|#...#|#...#', B: '####.|#...#|#...#|####.|#...#|#...#|####.',
  C: '.###.|#...#|#....|#....|#....|#...#|.###.', D: '####.|#...#|#...#|#...#|#...#|#...#|####.',
  E: '#####|#....|#....|####.|#....|#....|#####', F: '#####|#....|#....|####.|#....|#....|#....',
  G: '.###.|#...#|#....|#.###|#...#|#...#|.####', H: '#...#|#...#|#...#|#####|#...#|#...#|#...#',
  I: '.###.|..#..|..#..|..#..|..#..|..#..|.###.', J: '..###|...#.|...#.|...#.|...#.|#..#.|.##..',
  K: '#...#|#..#.|#.#..|##...|#.#..|#..#.|#...#', L: '#....|#....|#....|#....|#....|#....|#####',
  M: '#...#|##.##|#.#.#|#.#.#|#...#|#...#|#...#', N: '#...#|##..#|#.#.#|#..##|#...#|#...#|#...#',
  O: '.###.|#...#|#...#|#...#|#...#|#...#|.###.', P: '####.|#...#|#...#|####.|#....|#....|#....',
  Q: '.###.|#...#|#...#|#...#|#.#.#|#..#.|.##.#', R: '####.|#...#|#...#|####.|#.#..|#..#.|#...#',
  S: '.####|#....|#....|.###.|....#|....#|####.', T: '#####|..#..|..#..|..#..|..#..|..#..|..#..',
  U: '#...#|#...#|#...#|#...#|#...#|#...#|.###.', V: '#...#|#...#|#...#|#...#|#...#|.#.#.|..#..',
  W: '#...#|#...#|#...#|#.#.#|#.#.#|#.#.#|.#.#.', X: '#...#|#...#|.#.#.|..#..|.#.#.|#...#|#...#',
  Y: '#...#|#...#|.#.#.|..#..|..#..|..#..|..#..', Z: '#####|....#|...#.|..#..|.#...|#....|#####',
  0: '.###.|#...#|#..##|#.#.#|##..#|#...#|.###.', 1: '..#..|.##..|..#..|..#..|..#..|..#..|.###.',
  2: '.###.|#...#|....#|...#.|..#..|.#...|#####', 3: '#####|...#.|..#..|...#.|....#|#...#|.###.',
  4: '...#.|..##.|.#.#.|#..#.|#####|...#.|...#.', 5: '#####|#....|####.|....#|....#|#...#|.###.',
  6: '..##.|.#...|#....|####.|#...#|#...#|.###.', 7: '#####|....#|...#.|..#..|.#...|.#...|.#...',
  8: '.###.|#...#|#...#|.###.|#...#|#...#|.###.', 9: '.###.|#...#|#...#|.####|....#|...#.|.##..',
  '.': '.....|.....|.....|.....|.....|.##..|.##..', '-': '.....|.....|.....|.###.|.....|.....|.....',
  ':': '.....|.##..|.##..|.....|.##..|.##..|.....', '/': '....#|....#|...#.|..#..|.#...|#....|#....',
  '%': '##...|##..#|...#.|..#..|.#...|#..##|...##', '(': '...#.|..#..|.#...|.#...|.#...|..#..|...#.',
  ')': '.#...|..#..|...#.|...#.|...#.|..#..|.#...', '=': '.....|.....|#####|.....|#####|.....|.....',
  '<': '...#.|..#..|.#...|#....|.#...|..#..|...#.', '>': '.#...|..#..|...#.|....#|...#.|..#..|.#...',
  ',': '.....|.....|.....|.....|.##..|.##..|.#...', '+': '.....|..#..|..#..|#####|..#..|..#..|.....',
};

const INK: Record<string, string> = Object.fromEntries(Object.entries(GLYPHS).map(([k, g]) => [k, g.replace(/\|/g, '')]));

class Canvas {
  readonly rgba: Uint8Array;
  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.rgba = new Uint8Array(width * height * 4);
  }
  set(x: number, y: number, c: Rgb): void {
    const xi = Math.round(x);
    const yi = Math.round(y);
    if (xi < 0 || yi < 0 || xi >= this.width || yi >= this.height) return;
    const o = (yi * this.width + xi) * 4;
    this.rgba[o] = c[0];
    this.rgba[o + 1] = c[1];
    this.rgba[o + 2] = c[2];
    this.rgba[o + 3] = 255;
  }
  grey(x: number, y: number, v: number): void {
    const o = (y * this.width + x) * 4;
    this.rgba[o] = this.rgba[o + 1] = this.rgba[o + 2] = v;
    this.rgba[o + 3] = 255;
  }
  /** A line `thick` pixels wide (square brush). */
  line(x0: number, y0: number, x1: number, y1: number, c: Rgb, thick = 1): void {
    const n = Math.max(1, Math.ceil(Math.hypot(x1 - x0, y1 - y0)));
    const h = (thick - 1) / 2;
    for (let i = 0; i <= n; i++) {
      const x = x0 + ((x1 - x0) * i) / n;
      const y = y0 + ((y1 - y0) * i) / n;
      for (let dx = -h; dx <= h; dx++) for (let dy = -h; dy <= h; dy++) this.set(x + dx, y + dy, c);
    }
  }
  ellipse(cx: number, cy: number, ax: number, ay: number, c: Rgb, thick = 1): void {
    const n = Math.max(24, Math.ceil(2 * Math.PI * Math.max(ax, ay)));
    for (let i = 0; i < n; i++) {
      const a0 = (2 * Math.PI * i) / n;
      const a1 = (2 * Math.PI * (i + 1)) / n;
      this.line(cx + ax * Math.cos(a0), cy + ay * Math.sin(a0), cx + ax * Math.cos(a1), cy + ay * Math.sin(a1), c, thick);
    }
  }
  /** Text at (x, y) top-left with a black outline, so it reads on bone and on air alike. */
  text(x: number, y: number, s: string, c: Rgb, scale = TEXT_SCALE): void {
    const glyphs = [...s.toUpperCase()].map((ch) => INK[ch]);
    for (const [colour, offsets] of [[[0, 0, 0] as Rgb, [[-1, 0], [1, 0], [0, -1], [0, 1], [1, 1]]], [c, [[0, 0]]]] as const) {
      for (const [ox, oy] of offsets) {
        glyphs.forEach((g, i) => {
          if (!g) return;
          for (let r = 0; r < 7; r++) {
            for (let col = 0; col < 5; col++) {
              if (g[r * 5 + col] !== '#') continue;
              for (let sy = 0; sy < scale; sy++) for (let sx = 0; sx < scale; sx++) this.set(x + (i * 6 + col) * scale + sx + ox, y + r * scale + sy + oy, colour);
            }
          }
        });
      }
    }
  }
  png(): OverlayImage {
    return { png: encodePng(this.width, this.height, this.rgba, 'rgba'), width: this.width, height: this.height };
  }
}

/** Width in pixels of `s` drawn by `Canvas.text`. */
export function textWidth(s: string, scale = TEXT_SCALE): number {
  return s.length * 6 * scale - scale;
}

function windowed(hu: number): number {
  const lo = WINDOW.level - WINDOW.width / 2;
  return Math.max(0, Math.min(255, Math.round(((hu - lo) / WINDOW.width) * 255)));
}

/** HU at (fractional) row, column and slice index, linear in row and slice, nearest column. */
function sampleRowSlice(vol: CtVolume, row: number, column: number, slice: number): number {
  const r0 = Math.max(0, Math.min(vol.rows - 1, Math.floor(row)));
  const r1 = Math.min(vol.rows - 1, r0 + 1);
  const k0 = Math.max(0, Math.min(vol.slices - 1, Math.floor(slice)));
  const k1 = Math.min(vol.slices - 1, k0 + 1);
  const fr = Math.max(0, Math.min(1, row - r0));
  const fk = Math.max(0, Math.min(1, slice - k0));
  const plane = vol.rows * vol.columns;
  const at = (k: number, r: number): number => vol.hu[k * plane + r * vol.columns + column]!;
  return (1 - fk) * ((1 - fr) * at(k0, r0) + fr * at(k0, r1)) + fk * ((1 - fr) * at(k1, r0) + fr * at(k1, r1));
}

/** Fractional slice index of a head–foot coordinate (the volume's slices are regular). */
function sliceIndex(vol: CtVolume, z: number): number {
  return vol.slices > 1 ? (z - vol.z[0]!) / vol.spacing.slice : 0;
}

function sagittal(vol: CtVolume, f: CtFindings): OverlayImage {
  const { box, midlineColumn: mc } = f.geometry;
  const dir = vol.rowsGoPosterior ? 1 : -1;
  const front = vol.rowsGoPosterior ? box.r0 : box.r1;
  const back = vol.rowsGoPosterior ? box.r1 : box.r0;
  // AP mm from the crop's anterior edge ↔ row index
  const apFrom = -40;
  const apTo = Math.abs(back - front) * vol.spacing.row + 70;
  const rowOf = (apMm: number): number => front + (dir * apMm) / vol.spacing.row;
  const zTop = vol.z[vol.slices - 1]! + vol.spacing.slice / 2;
  const zBottom = vol.z[0]! - vol.spacing.slice / 2;
  const imgW = Math.round((apTo - apFrom) / PIXEL_MM);
  const panel = 150; // right-hand margin for the grade text
  const W = imgW + panel;
  const H = Math.max(1, Math.round((zTop - zBottom) / PIXEL_MM));
  const cv = new Canvas(W, H);
  const yOf = (z: number): number => (zTop - z) / PIXEL_MM;
  const xOf = (row: number): number => ((row - front) * dir * vol.spacing.row - apFrom) / PIXEL_MM;
  for (let y = 0; y < H; y++) {
    const k = sliceIndex(vol, zTop - (y + 0.5) * PIXEL_MM);
    for (let x = 0; x < imgW; x++) {
      const r = rowOf(apFrom + (x + 0.5) * PIXEL_MM);
      const v = r < 0 || r > vol.rows - 1 ? -1000 : (sampleRowSlice(vol, r, Math.max(0, mc - 1), k) + sampleRowSlice(vol, r, mc, k) + sampleRowSlice(vol, r, Math.min(vol.columns - 1, mc + 1), k)) / 3;
      cv.grey(x, y, windowed(v));
    }
    for (let x = imgW; x < W; x++) cv.grey(x, y, 0);
  }
  const morph = new Map((f.morphometry ?? []).map((m) => [m.level, m]));
  for (const l of f.levels) {
    const yMid = yOf((l.zBottom + l.zTop) / 2);
    const m = morph.get(l.label);
    const colour = m ? GRADE_COLOUR[m.grade] : WHITE;
    cv.text(Math.max(2, xOf(front) - textWidth(l.label) - 8), yMid - 7, l.label, WHITE);
    if (m) {
      const v = { sliceFrom: sliceAt(vol, l.zBottom + vol.spacing.slice / 2), sliceTo: sliceAt(vol, l.zTop - vol.spacing.slice / 2) };
      // Measured on the level's own midline (scoliosis); drawn on this plane at the measured rows and heights.
      const own = levelBody(vol, f.geometry, v);
      for (const e of sagittalHeights(vol, own.midlineColumn, own.box, v, DEFAULT_MORPHOMETRY.edgeHu) ?? []) {
        const x = xOf(e.row);
        cv.line(x, yOf(e.top), x, yOf(e.bottom), colour, 2);
        cv.line(x - 3, yOf(e.top), x + 3, yOf(e.top), colour, 1);
        cv.line(x - 3, yOf(e.bottom), x + 3, yOf(e.bottom), colour, 1);
      }
      cv.text(imgW + 6, yMid - 15, `${l.label} G${m.grade} ${SHAPE[m.shape] ?? ''}`.trim(), colour);
      cv.text(imgW + 6, yMid + 1, `LOSS ${Math.round(m.heightLoss * 100)}%`, colour);
    } else if (l.excluded) {
      cv.text(imgW + 6, yMid - 7, `${l.label} ${/metal/.test(l.excluded) ? 'METAL' : 'CUT'}`, WHITE);
    }
  }
  const a = f.attenuation;
  const roiLevel = a && f.levels.find((l) => l.label === a.level);
  if (a && roiLevel) {
    const g = roiGeometry(vol, box, mc, roiLevel);
    const x0 = xOf(g.rowCentre - g.rowSemiAxis);
    const x1 = xOf(g.rowCentre + g.rowSemiAxis);
    cv.ellipse((x0 + x1) / 2, (yOf(g.zFrom) + yOf(g.zTo)) / 2, Math.abs(x1 - x0) / 2, Math.abs(yOf(g.zFrom) - yOf(g.zTo)) / 2, CYAN, 2);
  }
  if (f.morphometry === null) cv.text(4, 4, 'NO HEIGHTS: SLICES TOO THICK', WHITE);
  return cv.png();
}

function axial(vol: CtVolume, f: CtFindings): OverlayImage {
  const { box, midlineColumn: mc } = f.geometry;
  const a = f.attenuation;
  const roiLevel = (a && f.levels.find((l) => l.label === a.level)) ?? f.levels.find((l) => l.label === 'L1' && !l.truncated) ?? f.levels[0];
  const zMid = roiLevel ? (roiLevel.zBottom + roiLevel.zTop) / 2 : vol.z[vol.slices >> 1]!;
  const k = sliceAt(vol, zMid);
  const size = 160; // mm
  const n = Math.round(size / PIXEL_MM);
  const rc = (box.r0 + box.r1) / 2;
  // The crop centre sits 20 mm behind the body centre so the canal and arch are in view.
  const rowCentre = rc + ((vol.rowsGoPosterior ? 1 : -1) * 20) / vol.spacing.row;
  const rowOf = (y: number): number => rowCentre + ((y + 0.5) * PIXEL_MM - size / 2) / vol.spacing.row;
  const colOf = (x: number): number => mc + ((x + 0.5) * PIXEL_MM - size / 2) / vol.spacing.column;
  // Image Orientation (Patient) row cosine x > 0: columns run to the patient's left, i.e. the viewer's right.
  const flip = (vol.orientation[0] ?? 1) < 0;
  const cv = new Canvas(n, n);
  const plane = vol.rows * vol.columns;
  for (let y = 0; y < n; y++) {
    const rr = vol.rowsGoPosterior ? rowOf(y) : rowOf(n - 1 - y);
    for (let x = 0; x < n; x++) {
      const cc = colOf(flip ? n - 1 - x : x);
      const r0 = Math.floor(rr);
      const c0 = Math.floor(cc);
      let v = -1000;
      if (r0 >= 0 && c0 >= 0 && r0 + 1 < vol.rows && c0 + 1 < vol.columns) {
        const fr = rr - r0;
        const fc = cc - c0;
        const o = k * plane + r0 * vol.columns + c0;
        v = (1 - fr) * ((1 - fc) * vol.hu[o]! + fc * vol.hu[o + 1]!) + fr * ((1 - fc) * vol.hu[o + vol.columns]! + fc * vol.hu[o + vol.columns + 1]!);
      }
      cv.grey(x, y, windowed(v));
    }
  }
  const xOf = (col: number): number => {
    const x = ((col - mc) * vol.spacing.column + size / 2) / PIXEL_MM - 0.5;
    return flip ? n - 1 - x : x;
  };
  const yOf = (row: number): number => {
    const y = ((row - rowCentre) * vol.spacing.row + size / 2) / PIXEL_MM - 0.5;
    return vol.rowsGoPosterior ? y : n - 1 - y;
  };
  if (a && roiLevel) {
    const g = roiGeometry(vol, box, mc, roiLevel);
    cv.ellipse(xOf(g.columnCentre), yOf(g.rowCentre), (g.columnSemiAxis * vol.spacing.column) / PIXEL_MM, (g.rowSemiAxis * vol.spacing.row) / PIXEL_MM, CYAN, 2);
    cv.text(4, 4, `${a.level} ROI MEDIAN ${Math.round(a.medianHu)} HU`, CYAN);
    cv.text(4, 22, `IQR ${Math.round(a.p25)}-${Math.round(a.p75)} HU`, CYAN);
    if (a.adjustedHu !== a.medianHu) cv.text(4, 40, `ADJUSTED ${Math.round(a.adjustedHu)} HU`, CYAN);
  } else {
    cv.text(4, 4, `${roiLevel?.label ?? ''} NO ROI MEASURED`.trim(), WHITE);
  }
  cv.text(4, n - 18, 'R', WHITE);
  cv.text(n - 14, n - 18, 'L', WHITE);
  return cv.png();
}

/** The sagittal and axial overlay PNGs of a volume's findings. */
export function renderCtOverlays(vol: CtVolume, findings: CtFindings): { sagittal: OverlayImage; axial: OverlayImage } {
  return { sagittal: sagittal(vol, findings), axial: axial(vol, findings) };
}
