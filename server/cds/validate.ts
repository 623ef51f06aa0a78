/**
 * ajv validation of CDS Hooks request bodies against the JSON Schemas in `server/cds/schemas/` (kept in the repo so
 * the contract is reviewable), and the OperationOutcome a malformed request gets (400; CDS Hooks 2.0 recommends an
 * OperationOutcome body for errors).
 * @see https://cds-hooks.hl7.org/2.0/#http-response
 */
import { readFileSync } from 'node:fs';
import type { OperationOutcome } from '@medplum/fhirtypes';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { Feedback, HookRequest, ServiceDefinition } from './types.ts';

const load = (name: string): Record<string, unknown> => JSON.parse(readFileSync(new URL(`./schemas/${name}.schema.json`, import.meta.url), 'utf8')) as Record<string, unknown>;

const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false });
const requestSchema: ValidateFunction = ajv.compile(load('hook-request'));
const feedbackSchema: ValidateFunction = ajv.compile(load('feedback'));
const contextSchemas: Record<ServiceDefinition['hook'], ValidateFunction> = {
  'patient-view': ajv.compile(load('context-patient-view')),
  'order-select': ajv.compile(load('context-order-select')),
  'order-sign': ajv.compile(load('context-order-sign')),
};

export function operationOutcome(code: OperationOutcome['issue'][number]['code'], texts: string[], severity: 'error' | 'fatal' = 'error'): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: texts.map((text) => ({ severity, code, details: { text } })) };
}

function describe(prefix: string, errors: readonly ErrorObject[] | null | undefined): string[] {
  return (errors ?? []).slice(0, 10).map((e) => {
    const where = `${prefix}${e.instancePath}` || '/';
    if (e.keyword === 'required') return `${where}: missing ${String((e.params as { missingProperty: string }).missingProperty)}`;
    if (e.keyword === 'dependencies') return `${where}: fhirAuthorization requires fhirServer`;
    return `${where}: ${e.message ?? 'is invalid'}`;
  });
}

export type Validated<T> = { ok: true; value: T } | { ok: false; problems: string[] };

/** Validates a hook request for `service`: the generic request schema, the hook's context schema and `hook` itself. */
export function validateHookRequest(body: unknown, service: ServiceDefinition): Validated<HookRequest> {
  if (!requestSchema(body)) return { ok: false, problems: describe('', requestSchema.errors) };
  const req = body as HookRequest;
  if (req.hook !== service.hook) return { ok: false, problems: [`/hook: service ${service.id} answers "${service.hook}", not "${req.hook}"`] };
  const ctx = contextSchemas[service.hook];
  if (!ctx(req.context)) return { ok: false, problems: describe('/context', ctx.errors) };
  return { ok: true, value: req };
}

export function validateFeedback(body: unknown): Validated<Feedback[]> {
  if (!feedbackSchema(body)) return { ok: false, problems: describe('', feedbackSchema.errors) };
  return { ok: true, value: (body as { feedback: Feedback[] }).feedback };
}
