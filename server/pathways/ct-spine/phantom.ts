/**
 * A synthetic thoracolumbar spine CT for tests and benchmarks (not a model of any patient): vertebral bodies as
 * elliptic cylinders with a cortical shell and end plates around a trabecular core, discs, a canal and posterior
 * arch, a basivertebral vein, transverse processes on lumbar levels, ribs on thoracic levels, optional wedge deformity and metal, and
 * seeded Gaussian noise. Each voxel averages sub-samples along z, so thick slices carry partial volume.
 * Geometry: x = patient left (columns), y = posterior (rows), z = superior (slices), all mm.
 */
import { seededRandom } from '../../sitecheck/recalibrate.ts';
import type { CtVolume } from './volume.ts';

export interface PhantomLevel {
  label: string;
  /** Posterior body height, mm. */
  height: number;
  trabecularHu: number;
  /** Anterior height as a fraction of the posterior height (wedge deformity); 1 when absent. */
  anteriorFraction?: number;
  /** Middle height fraction (biconcave deformity); 1 when absent. */
  middleFraction?: number;
  ribs?: boolean;
  metal?: boolean;
}

export interface PhantomSpec {
  rows: number;
  columns: number;
  pixelMm: number;
  sliceMm: number;
  /** Bottom to top. */
  levels: PhantomLevel[];
  discMm: number;
  noiseSd: number;
  seed: number;
  /** mm of soft tissue above and below the stack. */
  marginMm: number;
}

export interface PhantomTruth {
  label: string;
  zBottom: number;
  zTop: number;
  ha: number;
  hm: number;
  hp: number;
  trabecularHu: number;
}

/** Body cross-section: centre (x, y) and semi-axes, mm. */
export const BODY = { x: 0, y: -15, a: 22, b: 16 } as const;
const CORTEX_MM = 1.5;
const CORTEX_HU = 450;
const DISC_HU = 80;
const TISSUE_HU = 40;
const VEIN_HU = 20;

/** The stack of levels with their z extents, bottom to top. */
export function phantomTruth(spec: Pick<PhantomSpec, 'levels' | 'discMm' | 'marginMm'>): PhantomTruth[] {
  let z = spec.marginMm;
  return spec.levels.map((l) => {
    const t = { label: l.label, zBottom: z, zTop: z + l.height, hp: l.height, ha: l.height * (l.anteriorFraction ?? 1), hm: l.height * (l.middleFraction ?? 1), trabecularHu: l.trabecularHu };
    z += l.height + spec.discMm;
    return t;
  });
}

/** HU of the noiseless phantom at one point. */
function valueAt(x: number, y: number, z: number, levels: readonly PhantomLevel[], truth: readonly PhantomTruth[], discMm: number): number {
  const ex = (x - BODY.x) / BODY.a;
  const ey = (y - BODY.y) / BODY.b;
  const r = Math.sqrt(ex * ex + ey * ey);
  const posteriorEdge = BODY.y + BODY.b;
  for (let i = 0; i < truth.length; i++) {
    const t = truth[i]!;
    const l = levels[i]!;
    if (z < t.zBottom - discMm || z > t.zTop + discMm) continue;
    // Body top surface: posterior height at the back, anterior height at the front, a central dip for biconcavity.
    const u = Math.min(1, Math.max(0, (y - (BODY.y - BODY.b)) / (2 * BODY.b))); // 0 anterior … 1 posterior
    let top = t.zBottom + t.ha + (t.hp - t.ha) * u;
    if (t.hm < t.hp) top -= (t.hp - t.hm) * Math.max(0, 1 - r * r) ;
    if (r <= 1 && z >= t.zBottom && z <= top) {
      if (l.metal && Math.abs(x - 8) < 2 && Math.abs(y - BODY.y) < 10) return 3000; // a pedicle-screw tip
      const inset = (1 - r) * Math.min(BODY.a, BODY.b);
      if (inset < CORTEX_MM || z - t.zBottom < CORTEX_MM || top - z < CORTEX_MM) return CORTEX_HU;
      // Basivertebral vein: a low-HU channel entering the back of the body at mid-height.
      if (Math.abs(x) < 2.5 && y > BODY.y + 0.45 * BODY.b && Math.abs(z - (t.zBottom + t.zTop) / 2) < 2) return VEIN_HU;
      return t.trabecularHu;
    }
    if (r <= 1 && z < t.zBottom && i > 0) return DISC_HU;
    if (z < t.zBottom + 3 || z > t.zTop - 3) continue;
    // Posterior elements: canal (soft tissue), pedicles, lamina, spinous process; lumbar transverse processes; ribs.
    const ax = Math.abs(x);
    if (y > posteriorEdge && y < posteriorEdge + 15 && ax >= 8 && ax < 13) return 400;
    if (y >= posteriorEdge + 15 && y < posteriorEdge + 22 && ax < 15) return 400;
    if (y >= posteriorEdge + 22 && y < posteriorEdge + 40 && ax < 3) return 400;
    const mid = (t.zBottom + t.zTop) / 2;
    if (!l.ribs && Math.abs(z - mid) < 5 && Math.abs(y - (posteriorEdge + 8)) < 4 && ax >= 13 && ax < 45) return 400;
    if (l.ribs && (z - mid) ** 2 + (y - posteriorEdge - 5) ** 2 < 25 && ax >= 20 && ax < 85) return 350;
  }
  return TISSUE_HU;
}

/** Renders the phantom; returns the volume and the truth per level. */
export function buildSpinePhantom(spec: PhantomSpec): { volume: CtVolume; truth: PhantomTruth[] } {
  const truth = phantomTruth(spec);
  const top = truth[truth.length - 1]!.zTop + spec.marginMm;
  const slices = Math.floor(top / spec.sliceMm) + 1;
  const { rows, columns, pixelMm } = spec;
  const hu = new Float32Array(rows * columns * slices);
  const sub = Math.max(1, Math.round(spec.sliceMm));
  const rnd = seededRandom(spec.seed);
  // Box–Muller, both values of each pair used.
  let spare = NaN;
  const gauss = (): number => {
    if (!Number.isNaN(spare)) {
      const v = spare;
      spare = NaN;
      return v;
    }
    const m = Math.sqrt(-2 * Math.log(1 - rnd()));
    const a = 2 * Math.PI * rnd();
    spare = m * Math.sin(a);
    return m * Math.cos(a);
  };
  // Columns farther out than every structure except ribs are plain tissue unless a ribbed level is near the slice.
  const reach = (ribsNear: boolean): number => (ribsNear ? 85 : 45);
  const z = Float64Array.from({ length: slices }, (_, k) => k * spec.sliceMm);
  let o = 0;
  for (let k = 0; k < slices; k++) {
    // Only levels whose z range reaches this slice are evaluated.
    const zc = z[k]!;
    const near = truth.map((t, i) => i).filter((i) => zc >= truth[i]!.zBottom - spec.discMm - spec.sliceMm && zc <= truth[i]!.zTop + spec.discMm + spec.sliceMm);
    const lv = near.map((i) => spec.levels[i]!);
    const tr = near.map((i) => truth[i]!);
    const xMax = reach(lv.some((l) => l.ribs));
    for (let r = 0; r < rows; r++) {
      const y = (r - rows / 2) * pixelMm;
      for (let c = 0; c < columns; c++) {
        const x = (c - (columns - 1) / 2) * pixelMm;
        if (near.length === 0 || Math.abs(x) >= xMax) {
          hu[o++] = TISSUE_HU + (spec.noiseSd ? spec.noiseSd * gauss() : 0);
          continue;
        }
        let v = 0;
        for (let s = 0; s < sub; s++) v += valueAt(x, y, zc + ((s + 0.5) / sub - 0.5) * spec.sliceMm, lv, tr, spec.discMm);
        hu[o++] = v / sub + (spec.noiseSd ? spec.noiseSd * gauss() : 0);
      }
    }
  }
  return {
    volume: { rows, columns, slices, spacing: { row: pixelMm, column: pixelMm, slice: spec.sliceMm }, orientation: [1, 0, 0, 0, 1, 0], z, rowsGoPosterior: true, hu },
    truth,
  };
}

/** T11–L4 with ribs on T11–T12, posterior heights growing caudally, bottom to top. */
export function defaultLevels(trabecularHu = 150): PhantomLevel[] {
  return [
    { label: 'L4', height: 28, trabecularHu },
    { label: 'L3', height: 27.5, trabecularHu },
    { label: 'L2', height: 27, trabecularHu },
    { label: 'L1', height: 26, trabecularHu },
    { label: 'T12', height: 25, trabecularHu, ribs: true },
    { label: 'T11', height: 24, trabecularHu, ribs: true },
  ];
}

export const DEFAULT_PHANTOM: Omit<PhantomSpec, 'levels'> = { rows: 120, columns: 250, pixelMm: 0.7, sliceMm: 2, discMm: 8, noiseSd: 20, seed: 1, marginMm: 6 };
