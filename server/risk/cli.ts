/**
 * `npm run assess -- --patient <id> [--study <ImagingStudy id>] [--json] [--fhir <file>] [--png <dir>]`
 *
 * Prints a readable summary of one assessment (risks with intervals, the decision — tier, what the risk means
 * against the guideline's treatment thresholds, the probability of being above them, the recommended action —, the
 * main caveat, warnings, top factors) against the
 * configured FHIR server and PACS (FHIR_BASE_URL / DICOMWEB_BASE_URL), or — when none is configured — against the
 * embedded demo sandboxes started in-process. `--json` prints the whole assessment; `--fhir` writes the FHIR
 * resources (a transaction-free collection Bundle); `--png` writes the heatmap and display PNGs.
 * Exit codes: 0 done, 2 bad arguments or configuration, 1 the assessment failed (message on stderr).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfigForCli } from '../config.ts';
import { HttpFhirClient } from '../fhir/client.ts';
import { createFhirTokenProvider } from '../auth/setup.ts';
import { DicomWebClient } from '../imaging/dicomweb-client.ts';
import { ModelRegistry } from '../inference/registry.ts';
import { createLogger } from '../logging.ts';
import { assess, type Assessment } from './assess.ts';
import { startEmbeddedSandboxes, type EmbeddedSandboxes } from './embedded.ts';
import { ACTION_TEXT, toFhir } from './fhir-output.ts';
import { formatProbability, formatRisk, formatRiskWithInterval, formatThreshold, tscoreText } from './numbers.ts';

const pct = (x: number | null | undefined): string => formatRisk(x);

export function summary(a: Assessment): string {
  const lines: string[] = [];
  lines.push(`Fracture risk — Patient/${a.patientId} (index date ${a.indexDate})`);
  lines.push(`Model ${a.model.id} ${a.model.version} on ${a.model.provider}. ${a.model.useStatement}`);
  lines.push(a.mode === 'image-and-clinical'
    ? `Basis: radiograph ImagingStudy/${a.study!.id} (${a.study!.laterality ?? '?'} hip) + clinical factors (QFracture-2012)`
    : 'Basis: clinical factors only (QFracture-2012) — see warnings');
  if (a.tscore) lines.push(`Femoral-neck T-score: ${tscoreText(a.tscore, (d) => d) || 'none'} (calibration ${a.tscore.calibrationVersion})`);
  for (const o of ['hip', 'mof'] as const) {
    const r = a.outcomes[o];
    lines.push('');
    lines.push(`${o === 'hip' ? 'Hip fracture' : 'Major osteoporotic fracture'} (${r.shown === 'fused' ? 'radiograph + clinical' : 'clinical only'}):`);
    for (const x of r.risks) lines.push(`  ${String(x.years).padStart(2)} y  ${formatRiskWithInterval(x.risk, x.lower, x.upper)}`);
    const q10 = r.clinicalOnly.risks.find((x) => x.years === 10)!.risk;
    const i10 = r.imageTermOnly?.risks.find((x) => x.years === 10)?.risk;
    lines.push(`  compare at 10 y: QFracture-2012 alone ${pct(q10)}${i10 !== undefined && r.shown === 'fused' ? `; radiograph term alone (reference clinical profile) ${pct(i10)}` : ''}`);
    if (r.raisedToHip) lines.push('  raised to the hip fracture risk where the MOF model alone was lower (MOF includes hip)');
    const top = r.contributions.filter((c) => c.qfracture > 0).slice(0, 5);
    if (top.length) lines.push(`  top factors (log-hazard): ${top.map((c) => `${c.label} +${c.qfracture.toFixed(2)}`).join(', ')}`);
  }
  lines.push('');
  const d = a.decision;
  lines.push(`Decision: ${a.tier.tier.toUpperCase()} — ${d.meaning}`);
  for (const x of [d.hip, d.mof]) {
    lines.push(`  ${x.outcome === 'hip' ? 'hip' : 'MOF'}: shown ${x.shownPercent}% vs threshold ${formatThreshold(x.thresholdPercent)}; probability above ${x.probabilityAbove === null ? '– (clinical-only: no interval)' : formatProbability(x.probabilityAbove)}`);
  }
  lines.push(`  action: ${d.action} — ${ACTION_TEXT[d.action]}${d.actionWarranted ? ' (action warranted)' : ''}`);
  lines.push(`  guideline: ${d.guideline.name} <${d.guideline.url}>`);
  lines.push(`  rule: ${a.tier.rule}`);
  lines.push(`Caveat: ${a.caveat ?? 'none'}`);
  if (a.ood) lines.push(`OOD distance ${a.ood.distance.toFixed(2)} (threshold ${a.ood.threshold.toFixed(2)})${a.ood.outside ? ' — OUTSIDE' : ''}`);
  lines.push(a.warnings.length ? `Warnings:\n${a.warnings.map((w) => `  ! ${w}`).join('\n')}` : 'Warnings: none');
  lines.push(a.attribution);
  return lines.join('\n');
}

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({ options: { patient: { type: 'string' }, study: { type: 'string' }, model: { type: 'string' }, json: { type: 'boolean' }, fhir: { type: 'string' }, png: { type: 'string' } } }).values;
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return 2;
  }
  if (!args.patient) {
    process.stderr.write('usage: npm run assess -- --patient <Patient id> [--study <ImagingStudy id>] [--model <model id>] [--json] [--fhir <file>] [--png <dir>]\n');
    return 2;
  }
  const config = loadConfigForCli();
  if (!config) return 2;
  const logger = createLogger({ level: process.env['LOG_LEVEL'] ? config.log.level : 'warn', destination: process.stderr });
  let sandboxes: EmbeddedSandboxes | undefined;
  const registry = await ModelRegistry.load(config.inference, logger);
  try {
    const st = registry.status();
    if (st.models.length === 0) {
      process.stderr.write(`No model could be loaded from ${config.inference.modelsDir} (MODELS_DIR): ${st.detail}\n`);
      return 1;
    }
    let fhirBase = config.fhir.baseUrl;
    let dicomBase = config.dicomweb.baseUrl;
    if (config.fhir.sandbox || config.dicomweb.sandbox) {
      sandboxes = await startEmbeddedSandboxes(config, logger);
      if (config.fhir.sandbox) fhirBase = sandboxes.fhirBaseUrl;
      if (config.dicomweb.sandbox) dicomBase = sandboxes.dicomWebBaseUrl;
    }
    const auth = config.dicomweb.auth;
    const externalFhirAuth = config.fhir.sandbox ? undefined : createFhirTokenProvider(config);
    const result = await assess(
      {
        // An external FHIR server gets the FHIR_AUTH credentials (issue 7); the CLI's embedded sandbox is unguarded.
        fhir: new HttpFhirClient({ baseUrl: fhirBase, timeoutMs: config.fhir.timeoutMs, ...(externalFhirAuth ? { tokenProvider: externalFhirAuth } : {}) }),
        dicomweb: new DicomWebClient({ baseUrl: dicomBase, timeoutMs: config.dicomweb.timeoutMs, retries: config.dicomweb.retries, ...(auth.type === 'none' ? {} : { auth }) }),
        registry,
        settings: config.risk,
        logger,
      },
      { patientId: args.patient, ...(args.study ? { studyId: args.study } : {}), ...(args.model ? { modelId: args.model } : {}) },
    );
    process.stdout.write(args.json ? `${JSON.stringify(result.assessment, null, 1)}\n` : `${summary(result.assessment)}\n`);
    if (args.fhir) {
      const f = toFhir(result);
      const entries = [f.riskAssessment, f.device, f.provenance, ...(f.documentReference ? [f.documentReference] : []), ...f.binaries];
      writeFileSync(resolve(args.fhir), `${JSON.stringify({ resourceType: 'Bundle', type: 'collection', entry: entries.map((resource) => ({ resource })) }, null, 1)}\n`);
    }
    if (args.png && result.pngs) {
      mkdirSync(resolve(args.png), { recursive: true });
      writeFileSync(join(resolve(args.png), `${args.patient}-heatmap.png`), result.pngs.overlay());
      writeFileSync(join(resolve(args.png), `${args.patient}-display.png`), result.pngs.display());
    }
    return 0;
  } catch (e) {
    process.stderr.write(`assessment failed: ${(e as Error).name}: ${(e as Error).message}\n`);
    return 1;
  } finally {
    await sandboxes?.close();
    await registry.close();
  }
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  void main().then((code) => process.exit(code));
}
