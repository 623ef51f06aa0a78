/** Top-level: the FLS worklist (or model monitoring) for a user-level launch, else the patient's assessment. */
import { useState } from 'preact/hooks';
import { assessmentIdFromAppContext } from '../launch-options.ts';
import { isMonitoringLaunch } from '../monitoring-model.ts';
import { isWorklistSession, type Session } from '../session.ts';
import { AssessmentView } from './assessment.tsx';
import { CoordinatorView } from './coordinator.tsx';
import { MonitoringView } from './monitoring.tsx';
import { Worklist } from './worklist.tsx';

export function App({ session }: { session: Session }) {
  // The FLS coordinator opens a worklist item in the coordinator's view (not the clinician's assessment view).
  const [openedTask, setOpenedTask] = useState<string | null>(null);
  const [monitoring, setMonitoring] = useState(false);
  if (isWorklistSession(session)) {
    if (isMonitoringLaunch(session)) return <MonitoringView session={session} />;
    if (monitoring) return <MonitoringView session={session} onBack={() => setMonitoring(false)} />;
    if (openedTask) return <CoordinatorView session={session} taskId={openedTask} onBack={() => setOpenedTask(null)} />;
    return (
      <>
        <Worklist session={session} onOpen={(item) => setOpenedTask(item.taskId)} />
        <nav class="hint screen-only mon-link" aria-label="Other views">
          <button type="button" class="btn btn-small" onClick={() => setMonitoring(true)}>
            Model monitoring
          </button>{' '}
          T-score estimate against DXA, per site
        </nav>
      </>
    );
  }
  return <AssessmentView session={session} assessmentId={assessmentIdFromAppContext(session.appContext)} patientId={session.patientId} />;
}
