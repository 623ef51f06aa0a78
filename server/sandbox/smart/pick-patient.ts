/**
 * `GET|POST /sandbox/auth/pick-patient` — the standalone launch's sign-in and patient picker (the page an EHR's
 * login and patient-selection screens would be). Plain server-rendered HTML with a form: labelled radio groups in
 * fieldsets, works without JavaScript and with a keyboard. Choosing "Allow" issues the authorization code and
 * redirects to the app; "Deny" redirects with `error=access_denied`.
 * @see https://hl7.org/fhir/smart-app-launch/STU2/app-launch.html#launch-app-standalone-launch
 */
import express, { Router, type Request, type Response } from 'express';
import type { Bundle, Patient } from '@medplum/fhirtypes';
import { issueCode, redirectError } from './authorize.ts';
import type { PendingAuthorization, SmartSandboxContext } from './context.ts';
import { esc, page } from './html.ts';
import { DEFAULT_USER, DEMO_USERS, isDemoUser } from './users.ts';

interface PatientRow {
  readonly id: string;
  readonly name: string;
  readonly birthDate: string;
  readonly gender: string;
}

async function listPatients(ctx: SmartSandboxContext): Promise<PatientRow[]> {
  const fhir = ctx.fhir();
  if (!fhir) return [];
  const r = await fhir.handle('GET', 'Patient?_count=500&_sort=_id');
  const bundle = r.body as Bundle<Patient>;
  return (bundle.entry ?? [])
    .map((e) => e.resource)
    .filter((p): p is Patient => p?.resourceType === 'Patient' && typeof p.id === 'string')
    .map((p) => {
      const n = p.name?.[0];
      const name = n?.text ?? [n?.given?.join(' '), n?.family].filter(Boolean).join(' ');
      return { id: p.id!, name: name || '(no name)', birthDate: p.birthDate ?? '', gender: p.gender ?? '' };
    });
}

function pickerPage(pending: PendingAuthorization, requestId: string, patients: readonly PatientRow[], user: string, client: string, problem?: string): string {
  const users = DEMO_USERS.map(
    (u, i) =>
      `<label><input type="radio" name="user" value="${esc(u.reference)}"${u.reference === user ? ' checked' : ''}${i === 0 ? ' required' : ''}> ${esc(u.label)} <small>(${esc(u.reference)})</small></label>`,
  ).join('\n');
  const rows = patients
    .map(
      (p, i) =>
        `<tr><td><input type="radio" name="patient" id="p-${esc(p.id)}" value="${esc(p.id)}"${i === 0 ? ' required' : ''}></td><td><label for="p-${esc(p.id)}">${esc(p.name)}</label></td><td>${esc(p.birthDate)}</td><td>${esc(p.gender)}</td><td><code>${esc(p.id)}</code></td></tr>`,
    )
    .join('\n');
  const patientPart = pending.needsPatient
    ? patients.length === 0
      ? '<p class="error" role="alert">The sandbox FHIR server has no patients yet (it may still be starting). Reload this page in a moment.</p>'
      : `<fieldset><legend>Patient to open</legend>
<table><caption class="visually-hidden">Synthetic demo patients</caption>
<thead><tr><th scope="col"><span class="visually-hidden">Choose</span></th><th scope="col">Name</th><th scope="col">Birth date</th><th scope="col">Sex</th><th scope="col">Id</th></tr></thead>
<tbody>
${rows}
</tbody></table></fieldset>`
    : '<p>This app asks for user-level access only: no patient is chosen here.</p>';
  const scopes = pending.scopes.map((s) => `<li><code>${esc(s)}</code></li>`).join('');
  return page(
    'Sign in and choose a patient — sandbox',
    `<h1>Sign in to the sandbox EHR</h1>
${problem ? `<p class="error" role="alert">${esc(problem)}</p>` : ''}
<p>The app <strong>${esc(client)}</strong> asks for:</p><ul>${scopes}</ul>
<form method="post" action="pick-patient">
<input type="hidden" name="request" value="${esc(requestId)}">
<fieldset><legend>Sign in as (demo user)</legend>
${users}
</fieldset>
${patientPart}
<p><button type="submit" name="decision" value="allow">Allow and continue</button><button type="submit" name="decision" value="deny" class="secondary" formnovalidate>Deny</button></p>
</form>
<style>.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}</style>`,
  );
}

function expired(res: Response): void {
  res.status(400).type('html').send(page('Request expired', '<h1>This sign-in request has expired</h1><p class="error" role="alert">Start the app again.</p>'));
}

export function pickPatientRouter(ctx: SmartSandboxContext): Router {
  const r = Router();

  r.get('/pick-patient', async (req: Request, res: Response) => {
    res.set('Cache-Control', 'no-store');
    const id = typeof req.query['request'] === 'string' ? req.query['request'] : '';
    const pending = ctx.pending.get(id);
    if (!pending) return expired(res);
    const hinted = typeof req.query['user'] === 'string' && isDemoUser(req.query['user']) ? req.query['user'] : DEFAULT_USER;
    const patients = pending.needsPatient ? await listPatients(ctx) : [];
    res.type('html').send(pickerPage(pending, id, patients, hinted, ctx.clients.get(pending.clientId)?.name ?? pending.clientId));
  });

  r.post('/pick-patient', express.urlencoded({ extended: false, limit: '8kb' }), async (req: Request, res: Response) => {
    res.set('Cache-Control', 'no-store');
    const b = (req.body ?? {}) as Record<string, unknown>;
    const id = typeof b['request'] === 'string' ? b['request'] : '';
    const pending = ctx.pending.get(id);
    if (!pending) return expired(res);
    const clientName = ctx.clients.get(pending.clientId)?.name ?? pending.clientId;
    if (b['decision'] === 'deny') {
      ctx.pending.delete(id);
      return redirectError(res, pending.redirectUri, 'access_denied', 'the user denied the request', pending.state);
    }
    const user = typeof b['user'] === 'string' && isDemoUser(b['user']) ? b['user'] : undefined;
    let patient: string | undefined;
    const patients = pending.needsPatient ? await listPatients(ctx) : [];
    if (pending.needsPatient) {
      const chosen = typeof b['patient'] === 'string' ? b['patient'] : '';
      patient = patients.find((p) => p.id === chosen)?.id;
    }
    if (!user || (pending.needsPatient && !patient)) {
      const problem = !user ? 'Choose a demo user.' : 'Choose a patient.';
      return void res.status(400).type('html').send(pickerPage(pending, id, patients, user ?? DEFAULT_USER, clientName, problem));
    }
    ctx.pending.delete(id);
    issueCode(
      ctx,
      res,
      {
        clientId: pending.clientId,
        redirectUri: pending.redirectUri,
        scopes: pending.scopes,
        user,
        ...(patient ? { patient, needPatientBanner: true } : {}),
        ...(pending.codeChallenge ? { codeChallenge: pending.codeChallenge } : {}),
        ...(pending.nonce ? { nonce: pending.nonce } : {}),
      },
      pending.state,
    );
  });
  return r;
}
