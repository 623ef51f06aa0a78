/** Top-level: the FLS worklist for a user-level launch, else the patient's assessment. */
import { useState } from 'preact/hooks';
import { assessmentIdFromAppContext } from '../launch-options.ts';
import { isWorklistSession, type Session } from '../session.ts';
import { AssessmentView } from './assessment.tsx';
import { Worklist } from './worklist.tsx';

export function App({ session }: { session: Session }) {
  const [opened, setOpened] = useState<{ assessmentId: string | null; patientId: string; patientName: string } | null>(null);
  if (isWorklistSession(session)) {
    if (opened) return <AssessmentView session={session} assessmentId={opened.assessmentId} patientId={opened.patientId} patientName={opened.patientName} onBack={() => setOpened(null)} />;
    return <Worklist session={session} onOpen={(item) => setOpened({ assessmentId: item.assessmentId ?? null, patientId: item.patientId, patientName: item.patientName })} />;
  }
  return <AssessmentView session={session} assessmentId={assessmentIdFromAppContext(session.appContext)} patientId={session.patientId} />;
}
