/**
 * Window/level on the 8-bit display radiograph (the service already applied the DICOM VOI window, PS3.3
 * C.11.2.1.2; this is the viewer's second, interactive window). Pure, for the unit tests.
 */

export interface WindowLevel {
  /** Window width in display grey levels (1–256). */
  width: number;
  /** Window centre (0–255). */
  level: number;
}

/** The identity window: what the service rendered. */
export const DEFAULT_WINDOW: WindowLevel = { width: 256, level: 128 };

/** 256-entry lookup table: grey in → grey out (linear ramp over [level − width/2, level + width/2], clamped). */
export function windowLut(w: WindowLevel): Uint8ClampedArray {
  const width = Math.max(1, w.width);
  const lo = w.level - width / 2;
  const lut = new Uint8ClampedArray(256);
  for (let v = 0; v < 256; v++) lut[v] = Math.round(((v - lo) / width) * 255);
  return lut;
}

/** Applies the window to RGBA pixels (grey images: R = G = B) into `out`, keeping alpha. */
export function applyWindow(src: Uint8ClampedArray, out: Uint8ClampedArray, w: WindowLevel): void {
  const lut = windowLut(w);
  for (let i = 0; i < src.length; i += 4) {
    const g = lut[src[i]!]!;
    out[i] = g;
    out[i + 1] = g;
    out[i + 2] = g;
    out[i + 3] = src[i + 3]!;
  }
}

/** Clamps a zoom/pan view so the image always covers the canvas (no panning into emptiness). */
export function clampView(view: { zoom: number; x: number; y: number }, size: { width: number; height: number }): { zoom: number; x: number; y: number } {
  const zoom = Math.min(8, Math.max(1, view.zoom));
  const maxX = size.width * (zoom - 1);
  const maxY = size.height * (zoom - 1);
  return { zoom, x: Math.min(maxX, Math.max(0, view.x)), y: Math.min(maxY, Math.max(0, view.y)) };
}
