/**
 * Card survey: every demo patient through the CDS service's patient-view hook, the way the demo EHR calls it
 * (signed JWT, full prefetch), against the service running in this process (embedded FHIR + DICOMweb sandboxes with
 * the demo cohort, the real model). Prints what a clinician would meet:
 *
 * - cards with the `warning` indicator, and how many of those have `decision.actionWarranted` (all should);
 * - median and maximum words of card detail (target: median ≤ 60);
 * - MOF < hip: assessments whose 10-year major-osteoporotic-fracture risk is below the hip risk (MOF includes hip;
 *   must be 0);
 * - tier/rounding mismatches: a risk shown on the card on one side of a treatment threshold and a tier that says the
 *   other (must be 0).
 *
 * Exits non-zero when MOF < hip or a mismatch is found. Every patient gets a card here (minimum tier `low`, a
 * deadline long enough for the full assessment): the survey is about what cards say, not when they are shown;
 * how many would be shown at the configured `CDS_PATIENT_VIEW_MIN_TIER` is printed too.
 *
 * Run: `npm run survey:cards` (`-- --cards` also prints every card's summary and detail).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import express from 'express';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { Bundle, Patient, Resource } from '@medplum/fhirtypes';
import { wordCount, type DecidedAssessment } from '../server/cds/cards.ts';
import { parseCdsClients } from '../server/cds/clients.ts';
import { CdsJwtVerifier } from '../server/cds/jwt.ts';
import { createCdsRouter } from '../server/cds/router.ts';
import { PREFETCH, SERVICE_IDS } from '../server/cds/services.ts';
import { CdsStore } from '../server/cds/store.ts';
import type { Card, HookResponse } from '../server/cds/types.ts';
import { loadConfig } from '../server/config.ts';
import { HttpFhirClient } from '../server/fhir/client.ts';
import { DicomWebClient } from '../server/imaging/dicomweb-client.ts';
import { ModelRegistry } from '../server/inference/registry.ts';
import { createLogger } from '../server/logging.ts';
import type { Tier } from '../server/risk/assess.ts';
import { startEmbeddedSandboxes } from '../server/risk/embedded.ts';
import { RiskService } from '../server/risk/service.ts';

/** One patient's card and the assessment behind it. */
export interface SurveyItem {
  patientId: string;
  card: Card | null;
  assessment: DecidedAssessment;
}

export interface SurveyThresholds {
  hipHigh: number;
  mofHigh: number;
  mofModerate: number;
}

export interface SurveyMismatch {
  patientId: string;
  tier: Tier;
  hipShown: number | null;
  mofShown: number | null;
  why: string;
}

export interface SurveyResult {
  patients: number;
  cards: number;
  warnings: number;
  warningsWithActionWarranted: number;
  tiers: Record<Tier, number>;
  words: { median: number | null; max: number | null };
  mofBelowHip: string[];
  mismatches: SurveyMismatch[];
}

/** A percentage as the card shows it ("14%", "2.3%", "<0.1%") → its number; null when absent. */
function shownNumber(text: string | undefined): number | null {
  if (!text) return null;
  if (text.startsWith('<')) return 0;
  const n = Number.parseFloat(text);
  return Number.isFinite(n) ? n : null;
}

const median = (xs: number[]): number | null => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/**
 * The survey's figures from cards and their assessments. A mismatch is judged on the numbers the card SHOWS (hip
 * from the summary, MOF from the detail): high needs a shown value at or above a treatment threshold; low needs
 * both below it (and MOF below the moderate band); the shown numbers must also be the decision's.
 */
export function surveyCards(items: readonly SurveyItem[], t: SurveyThresholds): SurveyResult {
  const cards = items.filter((i): i is SurveyItem & { card: Card } => i.card !== null);
  const warnings = cards.filter((i) => i.card.indicator === 'warning' || i.card.indicator === 'critical');
  const tiers: Record<Tier, number> = { low: 0, moderate: 0, high: 0 };
  for (const i of items) tiers[i.assessment.tier.tier]++;
  const mofBelowHip = items.filter((i) => {
    const r = (o: 'hip' | 'mof'): number => i.assessment.outcomes[o].risks.find((x) => x.years === 10)!.risk;
    return r('mof') < r('hip');
  }).map((i) => i.patientId);
  const mismatches: SurveyMismatch[] = [];
  for (const i of cards) {
    const tier = i.assessment.tier.tier;
    const hipShown = shownNumber(/10-year hip ([<\d.]+)%/.exec(i.card.summary)?.[1]);
    const mofShown = shownNumber(/Major osteoporotic fracture: ([<\d.]+)%/.exec(i.card.detail ?? '')?.[1]);
    const add = (why: string): void => void mismatches.push({ patientId: i.patientId, tier, hipShown, mofShown, why });
    if (hipShown === null || mofShown === null) {
      add('the card does not show both 10-year risks');
      continue;
    }
    const over = hipShown >= t.hipHigh || mofShown >= t.mofHigh;
    if (tier === 'high' && !over) add(`tier high, but the card shows hip ${hipShown}% < ${t.hipHigh}% and MOF ${mofShown}% < ${t.mofHigh}%`);
    if (tier === 'low' && over) add(`tier low, but the card shows a risk at or above a treatment threshold`);
    if (tier === 'low' && mofShown >= t.mofModerate) add(`tier low, but the card shows MOF ${mofShown}% ≥ ${t.mofModerate}%`);
    const d = i.assessment.decision;
    if (d.hip.shownPercent !== hipShown || d.mof.shownPercent !== mofShown) add(`the decision compared hip ${d.hip.shownPercent}% / MOF ${d.mof.shownPercent}%, the card shows ${hipShown}% / ${mofShown}%`);
  }
  const words = cards.map((i) => wordCount(i.card.detail ?? ''));
  return {
    patients: items.length,
    cards: cards.length,
    warnings: warnings.length,
    warningsWithActionWarranted: warnings.filter((i) => i.assessment.decision.actionWarranted).length,
    tiers,
    words: { median: median(words), max: words.length ? Math.max(...words) : null },
    mofBelowHip,
    mismatches,
  };
}

/** The figures as printed (also what the README quotes). */
export function formatSurvey(r: SurveyResult, shownAtConfiguredTier: number, minTier: Tier): string {
  return [
    `patients: ${r.patients} (tiers: high ${r.tiers.high}, moderate ${r.tiers.moderate}, low ${r.tiers.low})`,
    `cards: ${r.cards} (at CDS_PATIENT_VIEW_MIN_TIER=${minTier} the demo EHR would show ${shownAtConfiguredTier} on first chart open)`,
    `cards with the warning indicator: ${r.warnings} (with decision.actionWarranted: ${r.warningsWithActionWarranted})`,
    `card detail words: median ${r.words.median ?? '–'}, max ${r.words.max ?? '–'} (target: median ≤ 60)`,
    `MOF < hip: ${r.mofBelowHip.length}${r.mofBelowHip.length ? ` (${r.mofBelowHip.join(', ')})` : ''} (must be 0)`,
    `tier/rounding mismatches: ${r.mismatches.length} (must be 0)`,
    ...r.mismatches.map((m) => `  ${m.patientId}: ${m.why}`),
  ].join('\n');
}

const TIER_RANK: Record<Tier, number> = { low: 0, moderate: 1, high: 2 };

async function main(): Promise<void> {
  const config = loadConfig({ ...process.env, LOG_LEVEL: 'silent' });
  const logger = createLogger({ level: 'silent' });
  const tmp = mkdtempSync(join(tmpdir(), 'frcds-card-survey-'));
  const sandboxes = await startEmbeddedSandboxes(config, logger);
  const registry = await ModelRegistry.load({ ...config.inference, device: 'cpu' }, logger);
  const risk = new RiskService({
    deps: { fhir: new HttpFhirClient({ baseUrl: sandboxes.fhirBaseUrl, timeoutMs: 10_000 }), dicomweb: new DicomWebClient({ baseUrl: sandboxes.dicomWebBaseUrl, timeoutMs: 30_000, retries: 0 }), registry, settings: config.risk, logger },
    cacheSize: 1000, writeBack: false, logger,
  });
  const store = new CdsStore(join(tmp, 'cds.sqlite'));
  const { privateKey, publicKey } = await generateKeyPair('ES384');
  const kid = 'survey-key';
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES384' };
  const app = express();
  const server = await new Promise<Server>((resolve) => {
    const s = createServer(app);
    s.listen(0, '127.0.0.1', () => resolve(s));
  });
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const iss = 'https://survey-ehr.example.test';
  const clients = parseCdsClients({ clients: [{ id: 'survey', label: 'survey EHR', enabled: true, iss, jwks: { keys: [jwk] }, algorithms: ['ES384'] }] }, url);
  app.use('/cds-services', createCdsRouter({
    risk, store, logger,
    verifier: new CdsJwtVerifier({ clients, jtiTtlS: 3600, clockSkewS: 60 }),
    settings: { publicBaseUrl: url, deadlineMs: 60_000, orderMinTier: 'low', patientViewMinTier: 'low', fhirTimeoutMs: 10_000 },
  }));

  const fhirGet = async <T>(path: string): Promise<T> => (await (await fetch(`${sandboxes.fhirBaseUrl}/${path}`, { headers: { Accept: 'application/fhir+json' } })).json()) as T;
  const patients = ((await fhirGet<Bundle<Patient>>('Patient?_count=1000&_elements=id')).entry ?? []).map((e) => e.resource?.id).filter((id): id is string => !!id).sort();
  const items: SurveyItem[] = [];
  for (const patientId of patients) {
    // The prefetch the EHR sends: every discovery template run against its FHIR server.
    const prefetch: Record<string, Resource | null> = {};
    for (const [k, tpl] of Object.entries(PREFETCH)) {
      const b = await fhirGet<Resource & { entry?: unknown[] }>(tpl.replaceAll('{{context.patientId}}', encodeURIComponent(patientId)));
      prefetch[k] = b.resourceType === 'Bundle' && !(b.entry ?? []).length ? null : b;
    }
    const hookUrl = `${url}/cds-services/${SERVICE_IDS.patientView}`;
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'ES384', typ: 'JWT', kid }).setIssuer(iss).setAudience(hookUrl).setIssuedAt().setExpirationTime('5m').setJti(crypto.randomUUID()).sign(privateKey);
    const res = await fetch(hookUrl, { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ hook: 'patient-view', hookInstance: crypto.randomUUID(), context: { userId: 'Practitioner/demo-clinician', patientId }, prefetch }) });
    if (res.status !== 200) throw new Error(`patient-view for ${patientId}: HTTP ${res.status} ${await res.text()}`);
    const body = (await res.json()) as HookResponse;
    const assessment = (await risk.assess({ patientId })).stored.assessment as DecidedAssessment;
    items.push({ patientId, card: body.cards[0] ?? null, assessment });
  }
  const result = surveyCards(items, config.risk.tiers);
  const minTier = config.cds.patientViewMinTier;
  const shownAtConfigured = items.filter((i) => TIER_RANK[i.assessment.tier.tier] >= TIER_RANK[minTier]).length;
  console.log(`Card survey — patient-view over ${patients.length} demo patients (model ${registry.status().detail}). Research use — trained on synthetic data.`);
  console.log(formatSurvey(result, shownAtConfigured, minTier));
  if (process.argv.includes('--cards')) {
    for (const i of items) if (i.card) console.log(`\n--- ${i.patientId} [${i.card.indicator}] ${wordCount(i.card.detail ?? '')} words; suggestions: ${(i.card.suggestions ?? []).map((x) => x.label).join(', ') || 'none'}\n${i.card.summary}\n${i.card.detail ?? ''}`);
  }

  await new Promise<void>((r) => {
    server.close(() => r());
    server.closeAllConnections();
  });
  store.close();
  await sandboxes.close();
  await registry.close();
  rmSync(tmp, { recursive: true, force: true });
  process.exit(result.mofBelowHip.length > 0 || result.mismatches.length > 0 ? 1 : 0);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(2);
  });
}
