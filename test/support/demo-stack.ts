/**
 * The demo stack for tests that need real HTTP: the embedded FHIR sandbox seeded with the committed demo cohort
 * and the sandbox DICOMweb server over its DICOM files, both on one loopback port (as `npm start` mounts them).
 */
import type { Server } from 'node:http';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import express from 'express';
import { loadConfig, REPO_ROOT } from '../../server/config.ts';
import { createLogger, type Logger } from '../../server/logging.ts';
import { createDicomWebRouter } from '../../server/sandbox/dicomweb/router.ts';
import { createFhirSandbox, type FhirSandbox } from '../../server/sandbox/fhir/router.ts';
import { seedFhirSandbox } from '../../server/sandbox/seed.ts';

export const DEMO_DIR = join(REPO_ROOT, 'server/sandbox/demo-cohort');

export interface DemoStack {
  base: string;
  fhirBaseUrl: string;
  dicomWebBaseUrl: string;
  fhir: FhirSandbox;
  server: Server;
  logger: Logger;
  close(): Promise<void>;
}

export const silentLogger = (): Logger => createLogger({ level: 'silent', destination: new Writable({ write: (_c, _e, cb) => cb() }) });

export async function startDemoStack(dataDir: string = DEMO_DIR): Promise<DemoStack> {
  const logger = silentLogger();
  const config = loadConfig({});
  const app = express();
  const mounts: { fhir?: express.RequestHandler; dicom?: express.RequestHandler } = {};
  app.use('/sandbox/fhir', (req, res, next) => (mounts.fhir ? mounts.fhir(req, res, next) : res.status(503).end()));
  app.use('/sandbox/dicom-web', (req, res, next) => (mounts.dicom ? mounts.dicom(req, res, next) : res.status(503).end()));
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const port = (server.address() as { port: number }).port;
  const base = `http://127.0.0.1:${port}`;
  const fhirBaseUrl = `${base}/sandbox/fhir`;
  const dicomWebBaseUrl = `${base}/sandbox/dicom-web`;
  const fhir = createFhirSandbox({ baseUrl: fhirBaseUrl, page: config.files.sandbox.fhir, maxRequestBytes: config.files.sandbox.fhir.maxRequestBytes, logger });
  const seeded = await seedFhirSandbox(fhir.repo, { fhirDir: join(dataDir, 'fhir'), dicomWebBaseUrl, logger });
  if (seeded.failedBundles > 0) throw new Error(`demo cohort seeding rejected ${seeded.failedBundles} bundles`);
  const dicom = await createDicomWebRouter({ dicomDir: join(dataDir, 'dicom'), logger });
  mounts.fhir = fhir.router;
  mounts.dicom = dicom.router;
  return {
    base,
    fhirBaseUrl,
    dicomWebBaseUrl,
    fhir,
    server,
    logger,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export interface DemoTruthPatient {
  patient_id: string;
  site: 'A' | 'B';
  sex: 'female' | 'male';
  index_datetime: string;
  image: { artefact: string | null; should_exclude: boolean };
  ehr: { qf_lp_hip: number; qf_lp_mof: number; qf_risk10_hip: number; qf_risk10_mof: number; bmi: number | null; nhs_ethnic: string; smoke_cat: number | null; alcohol_cat6: number | null };
}
