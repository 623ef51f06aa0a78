/**
 * The embedded demo sandboxes (FHIR seeded with the demo cohort + DICOMweb over its files) on an ephemeral loopback
 * port, for the command-line tools (`npm run assess`, `bench/assess.ts`) when no external servers are configured —
 * the same components `npm start` mounts, without the rest of the service.
 */
import type { Server } from 'node:http';
import { join } from 'node:path';
import express, { type RequestHandler } from 'express';
import type { AppConfig } from '../config.ts';
import type { Logger } from '../logging.ts';
import { createDicomWebRouter } from '../sandbox/dicomweb/router.ts';
import { createFhirSandbox } from '../sandbox/fhir/router.ts';
import { seedFhirSandbox } from '../sandbox/seed.ts';

export interface EmbeddedSandboxes {
  fhirBaseUrl: string;
  dicomWebBaseUrl: string;
  close(): Promise<void>;
}

export async function startEmbeddedSandboxes(config: AppConfig, logger: Logger): Promise<EmbeddedSandboxes> {
  const app = express();
  const mounts: { fhir?: RequestHandler; dicom?: RequestHandler } = {};
  app.use('/sandbox/fhir', (req, res, next) => (mounts.fhir ? mounts.fhir(req, res, next) : void res.status(503).end()));
  app.use('/sandbox/dicom-web', (req, res, next) => (mounts.dicom ? mounts.dicom(req, res, next) : void res.status(503).end()));
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const fhirBaseUrl = `${base}/sandbox/fhir`;
  const dicomWebBaseUrl = `${base}/sandbox/dicom-web`;
  const fhir = createFhirSandbox({ baseUrl: fhirBaseUrl, page: config.files.sandbox.fhir, maxRequestBytes: config.files.sandbox.fhir.maxRequestBytes, logger });
  const seeded = await seedFhirSandbox(fhir.repo, { fhirDir: join(config.sandboxDataDir, 'fhir'), dicomWebBaseUrl, logger });
  if (seeded.bundles === 0) throw new Error(`no demo cohort in ${config.sandboxDataDir} (SANDBOX_DATA_DIR)`);
  const dicom = await createDicomWebRouter({ dicomDir: join(config.sandboxDataDir, 'dicom'), logger });
  mounts.fhir = fhir.router;
  mounts.dicom = dicom.router;
  return {
    fhirBaseUrl,
    dicomWebBaseUrl,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
