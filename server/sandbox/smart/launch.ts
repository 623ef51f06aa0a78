/**
 * `POST /sandbox/auth/launch` (demo only; brief contract) — the demo EHR registers a launch context and gets the
 * opaque `launch` value to put in the app's launch URL (`/app/launch.html?iss=…&launch=…`).
 * Body: `{ patient, encounter?, user?, appContext?, needPatientBanner? }` → `201 { launch }`.
 * Ids are checked against the sandbox FHIR server so a typo fails here, not in the app.
 * @see https://hl7.org/fhir/smart-app-launch/STU2/app-launch.html#launch-app-ehr-launch
 */
import express, { Router, type Request, type Response } from 'express';
import { LAUNCH_TTL_MS, type LaunchContext, type SmartSandboxContext } from './context.ts';
import { randomHandle } from './store.ts';
import { DEFAULT_USER, isDemoUser } from './users.ts';

const ID = /^[A-Za-z0-9\-.]{1,64}$/;

function bad(res: Response, error: string): void {
  res.status(400).json({ error, status: 400 });
}

export function launchRouter(ctx: SmartSandboxContext): Router {
  const r = Router();
  r.post('/launch', express.json({ limit: '64kb' }), async (req: Request, res: Response) => {
    const b = (req.body ?? {}) as Record<string, unknown>;
    const patient = b['patient'];
    if (typeof patient !== 'string' || !ID.test(patient)) return bad(res, 'body must be {"patient": "<Patient id>", "encounter"?, "user"?, "appContext"?, "needPatientBanner"?}');
    const encounter = b['encounter'];
    if (encounter !== undefined && (typeof encounter !== 'string' || !ID.test(encounter))) return bad(res, '"encounter" must be an Encounter id');
    const userIn = b['user'];
    const user = typeof userIn === 'string' ? (userIn.includes('/') ? userIn : `Practitioner/${userIn}`) : DEFAULT_USER;
    if (userIn !== undefined && !isDemoUser(user)) return bad(res, '"user" must be Practitioner/demo-clinician or Practitioner/demo-fls-coordinator');
    const appContext = b['appContext'];
    if (appContext !== undefined && (typeof appContext !== 'string' || appContext.length > 8192)) return bad(res, '"appContext" must be a string (at most 8 KiB)');
    const banner = b['needPatientBanner'];
    if (banner !== undefined && typeof banner !== 'boolean') return bad(res, '"needPatientBanner" must be a boolean');
    const fhir = ctx.fhir();
    if (!fhir) return void res.status(503).set('Retry-After', '2').json({ error: 'The sandbox FHIR server is starting', status: 503 });
    if ((await fhir.handle('GET', `Patient/${patient}`)).status !== 200) return void res.status(404).json({ error: 'No such Patient in the sandbox', status: 404 });
    if (encounter && (await fhir.handle('GET', `Encounter/${encounter}`)).status !== 200) return void res.status(404).json({ error: 'No such Encounter in the sandbox', status: 404 });
    const launch: LaunchContext = {
      patient,
      user,
      needPatientBanner: banner ?? true,
      ...(typeof encounter === 'string' ? { encounter } : {}),
      ...(typeof appContext === 'string' ? { appContext } : {}),
    };
    const id = randomHandle(16);
    ctx.launches.set(id, launch, LAUNCH_TTL_MS);
    res.status(201).json({ launch: id });
  });
  return r;
}
