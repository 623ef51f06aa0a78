/**
 * The sandbox's demo users (brief contract: `Practitioner/demo-clinician`, `Practitioner/demo-fls-coordinator`),
 * seeded into the sandbox FHIR server so `fhirUser` resolves to a real resource.
 */
import type { Practitioner } from '@medplum/fhirtypes';
import type { FhirSandbox } from '../fhir/router.ts';

export interface DemoUser {
  /** Relative reference, the value of `fhirUser` in access tokens. */
  readonly reference: string;
  readonly label: string;
  readonly resource: Practitioner;
}

function practitioner(id: string, given: string, family: string, role: string): Practitioner {
  return {
    resourceType: 'Practitioner',
    id,
    active: true,
    identifier: [{ system: 'urn:frcds:sandbox-user', value: id }],
    name: [{ use: 'official', given: [given], family, text: `${given} ${family} (${role}, demo user)` }],
  };
}

export const DEMO_USERS: readonly DemoUser[] = [
  { reference: 'Practitioner/demo-clinician', label: 'Dr Demo Clinician — clinician (orders imaging, sees cards)', resource: practitioner('demo-clinician', 'Demo', 'Clinician', 'clinician') },
  {
    reference: 'Practitioner/demo-fls-coordinator',
    label: 'Demo FLS Coordinator — fracture liaison service (works the referral list)',
    resource: practitioner('demo-fls-coordinator', 'Demo', 'FLS-Coordinator', 'fracture liaison coordinator'),
  },
];

export const DEFAULT_USER = DEMO_USERS[0]!.reference;

export function isDemoUser(ref: string | undefined): boolean {
  return DEMO_USERS.some((u) => u.reference === ref);
}

/** PUTs the demo users into the sandbox (idempotent); returns how many were written. */
export async function seedDemoUsers(fhir: FhirSandbox): Promise<number> {
  let n = 0;
  for (const u of DEMO_USERS) {
    const r = await fhir.handle('PUT', `Practitioner/${u.resource.id}`, u.resource);
    if (r.status >= 300) throw new Error(`seeding ${u.reference} failed with HTTP ${r.status}`);
    n++;
  }
  return n;
}
