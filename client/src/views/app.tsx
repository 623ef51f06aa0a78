/** Top-level: the FLS worklist for a user-level launch, else the patient's assessment. */
import { useState } from 'preact/hooks';
import { assessmentIdFromAppContext } from '../launch-options.ts';
import { isWorklistSession, type Session } from '../session.ts';
import { AssessmentView } from './assessment.tsx';
import { CoordinatorView } from './coordinator.tsx';
import { Worklist } from './worklist.tsx';

export function App({ session }: { session: Session }) {
  // The FLS coordinator opens a worklist item in the coordinator's view (not the clinician's assessment view).
  const [openedTask, setOpenedTask] = useState<string | null>(null);
  if (isWorklistSession(session)) {
    if (openedTask) return <CoordinatorView session={session} taskId={openedTask} onBack={() => setOpenedTask(null)} />;
    return <Worklist session={session} onOpen={(item) => setOpenedTask(item.taskId)} />;
  }
  return <AssessmentView session={session} assessmentId={assessmentIdFromAppContext(session.appContext)} patientId={session.patientId} />;
}
