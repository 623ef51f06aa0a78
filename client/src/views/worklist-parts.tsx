/**
 * Small pieces of the FLS coordinator's screens shared by the worklist rows and cards and the coordinator's patient
 * view: the risk with its interval (numbers.ts formatting), the step with its due date and overdue flag, and a
 * media-query hook that switches the worklist to a stacked layout in a narrow EHR side panel.
 */
import { useEffect, useState } from 'preact/hooks';
import type { RiskWithInterval, WorklistItem } from '../../../server/fls/types.ts';
import { formatInterval, formatPercent } from '../../../server/risk/numbers.ts';
import { dueText, stepLabel } from '../worklist-model.ts';

/** True while the media query matches (re-evaluated when the window or side panel is resized). */
export function useMediaQuery(query: string): boolean {
  const [matches, setMatches] = useState(() => window.matchMedia(query).matches);
  useEffect(() => {
    const mq = window.matchMedia(query);
    const on = (): void => setMatches(mq.matches);
    on();
    mq.addEventListener('change', on);
    return () => mq.removeEventListener('change', on);
  }, [query]);
  return matches;
}

/** `5.2% (95% interval 2.1–11%)`, the shared number format (or "no interval" in clinical-only mode). */
export function RiskFigure(props: { label: string; r: RiskWithInterval }) {
  const { r } = props;
  return (
    <span class="wl-riskfig">
      <span class="wl-risk-label">{props.label}</span> <span class="wl-risk">{formatPercent(r.estimate)}</span>{' '}
      <span class="wl-interval">{r.lower === null || r.upper === null ? '(no interval: clinical factors only)' : `(95% interval ${formatInterval(r.lower, r.upper)})`}</span>
    </span>
  );
}

/** What is due next and by when, with an overdue flag that does not rely on colour alone; '–' when nothing is due. */
export function DueStatus(props: { item: WorklistItem; asOf: string }) {
  const due = dueText(props.item.pathway, props.asOf);
  if (!due) return <span class="wl-due">Nothing due</span>;
  return (
    <span class={due.overdue ? 'wl-due wl-due-over' : 'wl-due'}>
      {due.overdue && <strong class="overdue-flag">Overdue</strong>} {due.text}
      {due.relative && <span class="wl-due-rel"> ({due.relative})</span>}
    </span>
  );
}

/** The current step followed by what is due next. */
export function StepStatus(props: { item: WorklistItem; asOf: string }) {
  return (
    <span class="wl-step">
      <span class="wl-step-label">{stepLabel(props.item.pathway.step)}</span>
      <DueStatus item={props.item} asOf={props.asOf} />
    </span>
  );
}
