/**
 * The service's configuration for talking to simulated foreign EHRs, written the way a site's integrator would:
 * a copy of the repository's `smart-config/` (files and schemas) in a throw-away folder (`SMART_CONFIG_DIR`) with
 * - each EHR's CDS client added to `cds-clients.json` (its `iss`, JWKS URL / pinned keys / allowlisted `jku`, and its
 *   tenants' FHIR bases in `fhirServerAllowlist`: loopback IP literals, named explicitly, so they pass the address rules);
 * - each EHR tenant added to `token-verification.json` `servers` (its FHIR base and how its tokens are checked);
 * plus the secrets those entries name (environment variables), a site ConceptMap folder (`ORDER_CODE_MAPS_DIR`)
 * when the EHR codes orders locally, and `SANDBOX_FHIR_OPEN=true` so the EHRs' FHIR endpoints can read the
 * sandbox FHIR server without a token.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../../../server/config.ts';
import type { ForeignEhr } from './index.ts';

/** Canonical URL of the order-category CodeSystem the site maps target (fhir-profiles/codesystems/). */
export const ORDER_CATEGORY_SYSTEM = 'https://fracture-risk-cds.invalid/fhir/CodeSystem/frcds-imaging-order-category';

export interface InteropServiceConfig {
  /** Settings to pass to `startWholeService` (they include the secrets). */
  readonly env: Record<string, string>;
  /** The written `SMART_CONFIG_DIR`. */
  readonly smartConfigDir: string;
  /** Removes the throw-away folder. */
  cleanup(): void;
}

/** A site ConceptMap (FHIR R4) mapping local order codes of `system` to order categories. */
export function siteOrderCodeMap(id: string, system: string, codes: Readonly<Record<string, { display: string; category: string }>>): Record<string, unknown> {
  return {
    resourceType: 'ConceptMap',
    id,
    url: `https://fracture-risk-cds.invalid/fhir/ConceptMap/${id}`,
    version: '0.1.0',
    name: id.replace(/(^|-)([a-z])/g, (_m, _d, c: string) => c.toUpperCase()),
    status: 'active',
    group: [
      {
        source: system,
        target: ORDER_CATEGORY_SYSTEM,
        element: Object.entries(codes).map(([code, c]) => ({ code, display: c.display, target: [{ code: c.category, equivalence: 'wider' }] })),
      },
    ],
  };
}

const readJson = (file: string): Record<string, unknown> => JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
const writeJson = (file: string, data: unknown): void => writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);

export function writeInteropServiceConfig(ehrs: readonly ForeignEhr[], o: { siteMaps?: readonly Record<string, unknown>[]; env?: Record<string, string> } = {}): InteropServiceConfig {
  const root = mkdtempSync(join(tmpdir(), 'frcds-interop-'));
  const smartConfigDir = join(root, 'smart-config');
  cpSync(join(REPO_ROOT, 'smart-config'), smartConfigDir, { recursive: true });

  const cdsFile = join(smartConfigDir, 'cds-clients.json');
  const cds = readJson(cdsFile) as { clients: unknown[] };
  cds.clients.push(...ehrs.map((e) => ({ ...e.cdsClientEntry(), fhirServerAllowlist: e.tenantIds.map((t) => e.fhirBase(t)) })));
  writeJson(cdsFile, cds);

  const tvFile = join(smartConfigDir, 'token-verification.json');
  const tv = readJson(tvFile) as { servers?: unknown[] };
  tv.servers = [...(tv.servers ?? []), ...ehrs.flatMap((e) => e.tokenServers())];
  writeJson(tvFile, tv);

  const env: Record<string, string> = {
    SMART_CONFIG_DIR: smartConfigDir,
    SANDBOX_FHIR_OPEN: 'true',
    // Deterministic cards: the first hook call waits for the full assessment instead of answering "in progress".
    CDS_DEADLINE_MS: '8000',
    ...Object.assign({}, ...ehrs.map((e) => e.secrets())),
  };
  if (ehrs.some((e) => e.tokenServers().some((s) => s['mode'] === 'hs256'))) env['API_TOKEN_ALLOW_HS256'] = 'true';
  if (o.siteMaps?.length) {
    const dir = join(root, 'order-code-maps');
    mkdirSync(dir);
    o.siteMaps.forEach((m) => writeJson(join(dir, `${String(m['id'])}.json`), m));
    env['ORDER_CODE_MAPS_DIR'] = dir;
  }
  return { env: { ...env, ...o.env }, smartConfigDir, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}
