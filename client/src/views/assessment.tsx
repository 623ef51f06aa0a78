/**
 * The patient view: warnings first (impossible to miss), then the banner, the risk summary, the survival curve,
 * the heatmap, the factors, the actions and the model facts; a print-only one-page summary.
 */
import { useEffect, useState } from 'preact/hooks';
import { ApiError, loadAssessment } from '../api.ts';
import type { Session } from '../session.ts';
import type { AssessmentResponse, Outcome } from '../types.ts';
import { Actions } from './actions.tsx';
import { ErrorScreen, errorKind } from './error-screen.tsx';
import { Factors } from './factors.tsx';
import { Header } from './header.tsx';
import { HeatmapViewer } from './heatmap.tsx';
import { ModelFacts } from './model-facts.tsx';
import { PatientBanner } from './banner.tsx';
import { PrintSummary } from './print-summary.tsx';
import { RiskSummary } from './summary.tsx';
import { SurvivalCurve } from './survival-curve.tsx';
import { Warnings } from './warnings.tsx';

type State = { kind: 'loading' } | { kind: 'error'; error: unknown } | { kind: 'ready'; data: AssessmentResponse };

export interface AssessmentViewProps {
  session: Session;
  assessmentId: string | null;
  patientId: string | null;
  /** Name known from elsewhere (worklist): shown in a banner without reading the Patient. */
  patientName?: string;
  onBack?: () => void;
}

export function AssessmentView(props: AssessmentViewProps) {
  const { session } = props;
  const [state, setState] = useState<State>({ kind: 'loading' });
  const [outcome, setOutcome] = useState<Outcome>('hip');
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    let live = true;
    setState({ kind: 'loading' });
    loadAssessment({ ...session, patientId: props.patientId ?? session.patientId }, props.assessmentId).then(
      (data) => {
        performance.mark('frcds:assessment');
        if (live) setState({ kind: 'ready', data });
      },
      (error: unknown) => live && setState({ kind: 'error', error }),
    );
    return () => {
      live = false;
    };
  }, [props.assessmentId, props.patientId, attempt]);

  if (state.kind === 'loading') {
    return (
      <div class="app">
        <Header onBack={props.onBack} />
        <main class="loading" aria-busy="true">
          <p role="status">Assessing fracture risk…</p>
        </main>
      </div>
    );
  }
  if (state.kind === 'error') {
    const e = state.error;
    return <ErrorScreen kind={errorKind(e)} detail={(e as Error).message} {...(e instanceof ApiError && e.status ? { status: e.status } : {})} onRetry={() => setAttempt((n) => n + 1)} />;
  }

  const { assessment: a, links } = state.data;
  const showBanner = session.needPatientBanner || !!props.patientName;
  return (
    <div class="app">
      <Header onBack={props.onBack} printable />
      <main id="main" class="screen-only">
        <Warnings assessment={a} />
        {showBanner && <PatientBanner session={session} patientId={a.patientId} {...(props.patientName ? { knownName: props.patientName } : {})} />}
        <div class="layout">
          <div class="col-main">
            <RiskSummary assessment={a} />
            <SurvivalCurve assessment={a} outcome={outcome} onOutcome={setOutcome} />
            <Factors assessment={a} outcome={outcome} />
          </div>
          <div class="col-side">
            <HeatmapViewer session={session} assessment={a} links={links} />
            <Actions session={session} response={state.data} />
            <ModelFacts assessment={a} />
          </div>
        </div>
      </main>
      <PrintSummary assessment={a} />
    </div>
  );
}
