/**
 * An icon array of 100 people for the patient summary: dark red for those who break a hip in 10 years, orange for
 * those who break another bone from osteoporosis (wrist, spine, shoulder), grey for those who do not. One SVG with a
 * text alternative (role="img"), drawn with shapes only so it prints in colour or grey without images.
 */
import type { IconCounts } from '../decision-text.ts';

const COLS = 10;
const CELL_W = 20;
const CELL_H = 24;

/** The colour class of icon `i` (0–99): hips first, then other fractures, then the rest. */
export function iconKind(i: number, c: IconCounts): 'hip' | 'mof' | 'none' {
  return i < c.hip ? 'hip' : i < c.mof ? 'mof' : 'none';
}

export function IconArray({ counts, idPrefix }: { counts: IconCounts; idPrefix: string }) {
  const icons = Array.from({ length: 100 }, (_, i) => {
    const x = (i % COLS) * CELL_W + CELL_W / 2;
    const y = Math.floor(i / COLS) * CELL_H;
    return (
      <g key={i} class={`icon icon-${iconKind(i, counts)}`} transform={`translate(${x} ${y})`}>
        <circle cx="0" cy="6" r="4" />
        <path d="M-6 22 v-6 a6 6 0 0 1 12 0 v6 z" />
      </g>
    );
  });
  return (
    <figure class="icon-array">
      <svg viewBox={`0 0 ${COLS * CELL_W} ${10 * CELL_H}`} role="img" aria-labelledby={`${idPrefix}-icons-title`} data-testid="icon-array">
        <title id={`${idPrefix}-icons-title`}>{counts.label}</title>
        {icons}
      </svg>
      <figcaption aria-hidden="true">
        <span>
          <span class="swatch icon-hip" /> break a hip ({counts.hip})
        </span>{' '}
        <span>
          <span class="swatch icon-mof" /> break another bone ({counts.mof - counts.hip})
        </span>{' '}
        <span>
          <span class="swatch icon-none" /> no fracture ({counts.none})
        </span>
      </figcaption>
    </figure>
  );
}
