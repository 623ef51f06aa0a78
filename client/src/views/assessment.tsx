/**
 * The patient view, summary first (it fits the top of a 420 px EHR side panel): the risk with what it means, the
 * one caveat, the care already in place, the recommendation and the action for the tier; then the history, every
 * note, the survival curve, the factors, the heatmap and the model facts. A patient view (plain language, icon
 * array) replaces it on request, and a print-only one-page summary carries the patient's identifiers.
 */
import type { Patient } from '@medplum/fhirtypes';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, getCareStatus, getHistory, loadAssessment } from '../api.ts';
import { ctOf } from '../ct-findings.ts';
import type { Session } from '../session.ts';
import type { AssessmentResponse, CareStatus, Outcome } from '../types.ts';
import { OrderActions } from './actions.tsx';
import { patientName, PatientBanner, type PatientInfo } from './banner.tsx';
import { CtFindings } from './ct-findings.tsx';
import { ErrorScreen, errorKind } from './error-screen.tsx';
import { Factors } from './factors.tsx';
import { Header } from './header.tsx';
import { HeatmapViewer } from './heatmap.tsx';
import { History, type HistoryState } from './history.tsx';
import { ModelFacts } from './model-facts.tsx';
import { PatientSummary } from './patient-summary.tsx';
import { RiskSummary } from './summary.tsx';
import { SurvivalCurve } from './survival-curve.tsx';
import { noteItems, Warnings } from './warnings.tsx';

type State = { kind: 'loading' } | { kind: 'error'; error: unknown } | { kind: 'ready'; data: AssessmentResponse };

export interface AssessmentViewProps {
  session: Session;
  assessmentId: string | null;
  patientId: string | null;
  /** Name known from elsewhere (worklist): shown until the Patient resource is read. */
  patientName?: string;
  onBack?: () => void;
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export function AssessmentView(props: AssessmentViewProps) {
  const { session } = props;
  const [state, setState] = useState<State>({ kind: 'loading' });
  const [outcome, setOutcome] = useState<Outcome>('hip');
  const [attempt, setAttempt] = useState(0);
  const [patient, setPatient] = useState<{ resource: Patient | null; failed: boolean }>({ resource: null, failed: false });
  const [care, setCare] = useState<CareStatus | null>(null);
  const [history, setHistory] = useState<HistoryState>({ kind: 'loading' });
  const [patientView, setPatientView] = useState(false);
  const [curveImage, setCurveImage] = useState<string | null>(null);

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

  // Once the assessment names its patient: the Patient resource (identifiers), care status and history, together.
  const pid = state.kind === 'ready' ? state.data.assessment.patientId : null;
  useEffect(() => {
    if (!pid) return;
    const ac = new AbortController();
    session.readPatient(pid).then(
      (p) => !ac.signal.aborted && setPatient({ resource: p, failed: false }),
      () => !ac.signal.aborted && setPatient({ resource: null, failed: true }),
    );
    getCareStatus(session, pid, ac.signal).then(
      (c) => !ac.signal.aborted && setCare(c.careStatus),
      () => undefined, // the summary shows no care line; an order still re-checks before it is created
    );
    setHistory({ kind: 'loading' });
    getHistory(session, pid, ac.signal).then(
      (h) => !ac.signal.aborted && setHistory({ kind: 'ready', data: h }),
      (err: unknown) => !ac.signal.aborted && setHistory({ kind: 'error', message: message(err) }),
    );
    return () => ac.abort();
  }, [pid]);

  // The chart is a canvas: copy it into an image for the printout when printing starts.
  useEffect(() => {
    const before = (): void => {
      const c = document.getElementById('survival-canvas') as HTMLCanvasElement | null;
      if (c) setCurveImage(c.toDataURL('image/png'));
    };
    window.addEventListener('beforeprint', before);
    return () => window.removeEventListener('beforeprint', before);
  }, []);

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
    return <ErrorScreen kind={errorKind(e)} detail={message(e)} {...(e instanceof ApiError && e.status ? { status: e.status } : {})} onRetry={() => setAttempt((n) => n + 1)} />;
  }

  const { assessment: a, links } = state.data;
  const info: PatientInfo = { patient: patient.resource, failed: patient.failed, ...(props.patientName ? { knownName: props.patientName } : {}) };
  const showBanner = session.needPatientBanner || !!props.patientName || patientView;
  const notes = noteItems(a);
  const ct = ctOf(a);
  return (
    <div class="app">
      <Header onBack={props.onBack} printable patientView={patientView} onPatientView={setPatientView} />
      {patientView ? (
        <main id="main" class="screen-only">
          {showBanner && <PatientBanner info={info} />}
          <PatientSummary assessment={a} patient={patient.resource} {...(props.patientName ? { knownName: props.patientName } : {})} variant="screen" />
        </main>
      ) : (
        <main id="main" class="screen-only">
          {showBanner && <PatientBanner info={info} />}
          <div class="layout">
            <div class="col-main">
              <RiskSummary assessment={a} careStatus={care} notesCount={notes.length}>
                <OrderActions session={session} response={state.data} patientName={patientName(info)} patient={patient.resource} careStatus={care} onCareStatus={setCare} />
              </RiskSummary>
              {ct && <CtFindings session={session} assessment={a} ct={ct} />}
              <History assessment={a} state={history} />
              <Warnings assessment={a} />
              <SurvivalCurve assessment={a} outcome={outcome} onOutcome={setOutcome} />
              <Factors assessment={a} outcome={outcome} hasHeatmap={links !== null} />
            </div>
            <div class="col-side">
              {!ct && <HeatmapViewer session={session} assessment={a} links={links} />}
              <ModelFacts assessment={a} />
            </div>
          </div>
        </main>
      )}
      <PatientSummary assessment={a} patient={patient.resource} {...(props.patientName ? { knownName: props.patientName } : {})} variant="print" curveImage={curveImage} />
    </div>
  );
}
