/**
 * Seeds the sandbox FHIR server from the demo cohort's transaction bundles (`<data>/fhir/*.json`, brief contract 4:
 * one transaction Bundle per patient, every entry `PUT <Type>/<id>` with a deterministic id, references
 * `<Type>/<id>`).
 *
 * Each bundle is applied as one atomic transaction on the repository (validated like any other write). It does not
 * go through Medplum's batch processor because that caps a transaction at 50 updates, which a patient with a long
 * history exceeds, and PUT-only bundles need none of its reference rewriting. Seeding twice gives the same content
 * (PUT with fixed ids), so re-seeding is idempotent.
 *
 * `Endpoint.address` values under `https://pacs.invalid/dicom-web` (the placeholder the generator writes) are
 * rewritten to the DICOMweb base the deployment publishes, so `ImagingStudy.endpoint` leads to real pixels.
 */
import { readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Bundle, Endpoint, Resource } from '@medplum/fhirtypes';
import { OperationOutcomeError } from '@medplum/core';
import type { Logger } from '../logging.ts';
import type { SandboxRepository } from './fhir/repo.ts';
import { flsDemoResources } from './fls-demo.ts';

/** The DICOMweb address the cohort generator writes into every Endpoint (brief contract 4). */
export const PLACEHOLDER_DICOMWEB = 'https://pacs.invalid/dicom-web';

/** A seed bundle is unreadable or breaks contract 4. The message names the file (a patient id: not logged raw). */
export class SeedError extends Error {
  override readonly name = 'SeedError';
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
  }
}

export interface SeedOptions {
  /** Folder holding the `*.json` transaction bundles. */
  readonly fhirDir: string;
  /** Public DICOMweb base written into Endpoint.address in place of {@link PLACEHOLDER_DICOMWEB}. */
  readonly dicomWebBaseUrl: string;
  readonly logger: Logger;
  /** Also put some demo patients along the FLS pathway (server/sandbox/fls-demo.ts), dated back from `now`. */
  readonly flsDemo?: { readonly now?: Date };
}

export interface SeedResult {
  readonly bundles: number;
  readonly failedBundles: number;
  readonly resources: number;
  readonly byType: Record<string, number>;
  readonly endpointsRewritten: number;
  readonly ms: number;
  /** Demo FLS pathway items written (with `flsDemo`). */
  readonly flsDemoItems?: number;
  /** The first few failures (their messages name the file, which is a patient id: do not log them raw). */
  readonly errors: readonly SeedError[];
}

/** Rewrites a placeholder Endpoint address; returns true when it changed. */
export function rewriteEndpoint(endpoint: Endpoint, dicomWebBaseUrl: string): boolean {
  const address = endpoint.address;
  if (typeof address !== 'string' || !(address === PLACEHOLDER_DICOMWEB || address.startsWith(PLACEHOLDER_DICOMWEB + '/'))) return false;
  endpoint.address = dicomWebBaseUrl.replace(/\/+$/, '') + address.slice(PLACEHOLDER_DICOMWEB.length);
  return true;
}

/** Checks one bundle against contract 4 and returns its resources in entry order (with endpoints rewritten). */
export function resourcesOfSeedBundle(file: string, data: unknown, dicomWebBaseUrl: string): { resources: Resource[]; rewritten: number } {
  const bundle = data as Bundle;
  if (!bundle || typeof bundle !== 'object' || bundle.resourceType !== 'Bundle') throw new SeedError(file, 'not a FHIR Bundle');
  if (bundle.type !== 'transaction' && bundle.type !== 'batch') throw new SeedError(file, `Bundle.type is ${JSON.stringify(bundle.type)}, expected "transaction"`);
  const resources: Resource[] = [];
  let rewritten = 0;
  const seen = new Set<string>();
  for (const [i, entry] of (bundle.entry ?? []).entries()) {
    const r = entry.resource;
    const url = entry.request?.url ?? '';
    if (!r) throw new SeedError(file, `entry[${i}] has no resource`);
    if (entry.request?.method !== 'PUT') throw new SeedError(file, `entry[${i}] uses ${entry.request?.method ?? 'no'} method; seed bundles must use PUT <Type>/<id>`);
    if (url !== `${r.resourceType}/${r.id}`) throw new SeedError(file, `entry[${i}] request.url is not "<Type>/<id>" of its ${r.resourceType} resource`);
    if (seen.has(url)) throw new SeedError(file, `entry[${i}] repeats ${r.resourceType}/<id>`);
    seen.add(url);
    if (r.resourceType === 'Endpoint' && rewriteEndpoint(r, dicomWebBaseUrl)) rewritten++;
    resources.push(r);
  }
  if (resources.length === 0) throw new SeedError(file, 'the bundle has no entries');
  return { resources, rewritten };
}

/**
 * Loads every bundle of `fhirDir` into the repository. A bad bundle is logged and counted, never half-applied;
 * the others are still loaded. Throws only when the folder cannot be read.
 */
export async function seedFhirSandbox(repo: SandboxRepository, options: SeedOptions): Promise<SeedResult> {
  const started = Date.now();
  const log = options.logger.child({ component: 'sandbox-seed' });
  const files = (await readdir(options.fhirDir)).filter((f) => f.endsWith('.json')).sort();
  const byType: Record<string, number> = {};
  const errors: SeedError[] = [];
  let resources = 0;
  let endpointsRewritten = 0;
  const charts = new Map<string, Resource[]>();
  for (const file of files) {
    const patientId = basename(file, '.json');
    try {
      let data: unknown;
      try {
        data = JSON.parse(await readFile(join(options.fhirDir, file), 'utf8'));
      } catch (err) {
        throw new SeedError(file, `unreadable JSON (${(err as Error).message})`);
      }
      const { resources: list, rewritten } = resourcesOfSeedBundle(file, data, options.dicomWebBaseUrl);
      if (options.flsDemo) charts.set(patientId, list);
      try {
        await repo.withTransaction(async () => {
          for (const r of list) await repo.updateResource(r);
        });
      } catch (err) {
        if (err instanceof OperationOutcomeError) {
          const issues = (err.outcome.issue ?? []).map((i) => i.details?.text ?? i.code).join('; ');
          throw new SeedError(file, `rejected by the FHIR server: ${issues}`);
        }
        throw err;
      }
      for (const r of list) byType[r.resourceType] = (byType[r.resourceType] ?? 0) + 1;
      resources += list.length;
      endpointsRewritten += rewritten;
    } catch (err) {
      if (!(err instanceof SeedError)) throw err;
      errors.push(err);
      // The file name is a patient id: log it hashed, and the reason without the file name.
      log.error({ patientId, reason: err.message.slice(file.length + 2) }, 'seed bundle rejected');
    }
  }
  let flsDemoItems: number | undefined;
  if (options.flsDemo) {
    // Demo extras never make the seed fail: the cohort itself is what readiness reports on.
    try {
      const demo = flsDemoResources(charts, options.flsDemo.now ?? new Date());
      await repo.withTransaction(async () => {
        for (const r of demo.resources) await repo.updateResource(r);
      });
      flsDemoItems = demo.patients.length;
      if (demo.skipped.length) log.warn({ skipped: demo.skipped.length }, 'FLS pathway demo: some planned patients were left out (no chart or no QFracture estimate)');
    } catch (err) {
      flsDemoItems = 0;
      log.error({ err }, 'FLS pathway demo could not be seeded');
    }
  }
  const result: SeedResult = {
    bundles: files.length - errors.length,
    failedBundles: errors.length,
    resources,
    byType,
    endpointsRewritten,
    ms: Date.now() - started,
    errors: errors.slice(0, 5),
    ...(flsDemoItems !== undefined ? { flsDemoItems } : {}),
  };
  log.info({ bundles: result.bundles, failedBundles: result.failedBundles, resources, byType, endpointsRewritten, ms: result.ms }, 'sandbox FHIR seeded');
  return result;
}
