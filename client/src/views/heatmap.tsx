/**
 * Heatmap viewer (issue 7): the radiograph (`display.png`) with the Grad-CAM overlay (`heatmap.png`, same size,
 * alpha ∝ CAM) drawn on a canvas; overlay on/off and opacity, window/level on the radiograph, zoom (buttons,
 * slider, wheel) and pan (drag or arrow keys). Both PNGs are fetched with the bearer token.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { fetchBitmap } from '../api.ts';
import type { Session } from '../session.ts';
import { heatmapExplanation } from '../decision-text.ts';
import type { AssessmentResponse, Assessment } from '../types.ts';
import { applyWindow, clampView, DEFAULT_WINDOW, type WindowLevel } from '../window-level.ts';

interface Images {
  width: number;
  height: number;
  /** Original display pixels (RGBA). */
  pixels: Uint8ClampedArray;
  /** Windowed radiograph, redrawn when the window changes. */
  windowed: HTMLCanvasElement;
  overlay: ImageBitmap;
}

export function HeatmapViewer(props: { session: Session; assessment: Assessment; links: AssessmentResponse['links'] }) {
  const { links } = props;
  const canvas = useRef<HTMLCanvasElement>(null);
  const [images, setImages] = useState<Images | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [show, setShow] = useState(true);
  const [opacity, setOpacity] = useState(60);
  const [win, setWin] = useState<WindowLevel>(DEFAULT_WINDOW);
  const [view, setView] = useState({ zoom: 1, x: 0, y: 0 });
  const drag = useRef<{ x: number; y: number; vx: number; vy: number } | null>(null);

  useEffect(() => {
    if (!links) return;
    const ac = new AbortController();
    Promise.all([fetchBitmap(props.session, links.display, ac.signal), fetchBitmap(props.session, links.heatmap, ac.signal)]).then(
      ([display, overlay]) => {
        const windowed = document.createElement('canvas');
        windowed.width = display.width;
        windowed.height = display.height;
        const ctx = windowed.getContext('2d', { willReadFrequently: true })!;
        ctx.drawImage(display, 0, 0);
        const pixels = ctx.getImageData(0, 0, display.width, display.height).data;
        setImages({ width: display.width, height: display.height, pixels, windowed, overlay });
      },
      (err: unknown) => {
        if (!ac.signal.aborted) setError((err as Error).message);
      },
    );
    return () => ac.abort();
  }, [links?.display, links?.heatmap]);

  // Window/level → the windowed radiograph.
  useEffect(() => {
    if (!images) return;
    const ctx = images.windowed.getContext('2d')!;
    const out = ctx.createImageData(images.width, images.height);
    applyWindow(images.pixels, out.data, win);
    ctx.putImageData(out, 0, 0);
    draw();
  }, [images, win.width, win.level]);

  useEffect(() => draw(), [show, opacity, view.zoom, view.x, view.y]);

  function draw(): void {
    const c = canvas.current;
    if (!c || !images) return;
    c.width = images.width;
    c.height = images.height;
    const ctx = c.getContext('2d')!;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, c.width, c.height);
    ctx.setTransform(view.zoom, 0, 0, view.zoom, -view.x, -view.y);
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(images.windowed, 0, 0);
    if (show) {
      ctx.globalAlpha = opacity / 100;
      ctx.drawImage(images.overlay, 0, 0);
      ctx.globalAlpha = 1;
    }
    c.dataset['drawn'] = 'true'; // for tests and the benchmark: the radiograph is on the canvas
  }

  const size = { width: images?.width ?? 1, height: images?.height ?? 1 };
  const zoomTo = (zoom: number): void => {
    // Zoom about the centre of what is shown.
    setView((v) => {
      const cx = (v.x + size.width / 2) / v.zoom;
      const cy = (v.y + size.height / 2) / v.zoom;
      return clampView({ zoom, x: cx * zoom - size.width / 2, y: cy * zoom - size.height / 2 }, size);
    });
  };

  if (!links) {
    return (
      <section class="card heatmap" aria-labelledby="heatmap-title">
        <h2 id="heatmap-title">Radiograph heatmap</h2>
        <p class="empty-note">{heatmapExplanation(props.assessment, false)[0]}</p>
      </section>
    );
  }

  return (
    <section class="card heatmap" aria-labelledby="heatmap-title">
      <h2 id="heatmap-title">Radiograph heatmap</h2>
      {heatmapExplanation(props.assessment, true).map((t) => (
        <p class="hint heatmap-note" key={t}>
          {t}
        </p>
      ))}
      <div class="heatmap-stage">
        <canvas
          ref={canvas}
          id="heatmap-canvas"
          tabIndex={0}
          role="img"
          aria-label={`Hip radiograph${props.assessment.study?.laterality ? ` (${props.assessment.study.laterality === 'L' ? 'left' : 'right'})` : ''} with the heatmap of the regions that moved the estimate ${show ? `at ${opacity}% opacity` : 'hidden'}. Use the arrow keys to pan when zoomed.`}
          onWheel={(e) => {
            e.preventDefault();
            zoomTo(view.zoom * (e.deltaY < 0 ? 1.25 : 0.8));
          }}
          onPointerDown={(e) => {
            drag.current = { x: e.clientX, y: e.clientY, vx: view.x, vy: view.y };
            (e.currentTarget as HTMLCanvasElement).setPointerCapture(e.pointerId);
          }}
          onPointerMove={(e) => {
            const d = drag.current;
            const c = canvas.current;
            if (!d || !c) return;
            const scale = c.width / c.getBoundingClientRect().width;
            setView((v) => clampView({ zoom: v.zoom, x: d.vx - (e.clientX - d.x) * scale, y: d.vy - (e.clientY - d.y) * scale }, size));
          }}
          onPointerUp={() => (drag.current = null)}
          onKeyDown={(e) => {
            const step = 32;
            const moves: Record<string, [number, number]> = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
            const m = moves[e.key];
            if (m) {
              e.preventDefault();
              setView((v) => clampView({ zoom: v.zoom, x: v.x + m[0], y: v.y + m[1] }, size));
            }
          }}
        />
        {!images && !error && <p class="stage-note" role="status">Loading the radiograph…</p>}
        {error && (
          <p class="stage-note stage-error" role="alert">
            The radiograph could not be loaded: {error}
          </p>
        )}
      </div>
      <div class="cam-legend" aria-hidden="true">
        <span>less</span>
        <span class="cam-ramp" />
        <span>moved the estimate more</span>
      </div>
      <div class="controls">
        <label class="check">
          <input type="checkbox" checked={show} onChange={(e) => setShow((e.currentTarget as HTMLInputElement).checked)} /> Show heatmap
        </label>
        <label>
          <span>Heatmap opacity {opacity}%</span>
          <input type="range" min={0} max={100} step={5} value={opacity} disabled={!show} onInput={(e) => setOpacity(Number((e.currentTarget as HTMLInputElement).value))} />
        </label>
        <label>
          <span>Window {win.width}</span>
          <input type="range" min={16} max={256} step={8} value={win.width} onInput={(e) => setWin((w) => ({ ...w, width: Number((e.currentTarget as HTMLInputElement).value) }))} />
        </label>
        <label>
          <span>Level {win.level}</span>
          <input type="range" min={0} max={255} step={4} value={win.level} onInput={(e) => setWin((w) => ({ ...w, level: Number((e.currentTarget as HTMLInputElement).value) }))} />
        </label>
        <label>
          <span>Zoom {view.zoom.toFixed(1)}×</span>
          <input type="range" min={1} max={6} step={0.25} value={view.zoom} onInput={(e) => zoomTo(Number((e.currentTarget as HTMLInputElement).value))} />
        </label>
        <button
          type="button"
          class="btn btn-quiet"
          onClick={() => {
            setWin(DEFAULT_WINDOW);
            setView({ zoom: 1, x: 0, y: 0 });
            setOpacity(60);
            setShow(true);
          }}
        >
          Reset view
        </button>
      </div>
    </section>
  );
}
