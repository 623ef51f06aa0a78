/**
 * The project's FHIR ValueSets (`fhir-profiles/valuesets/*.json`, contract 6): the codes the cohort generator
 * writes and the service reads back. Only `compose.include` with explicit concepts is supported — that is how every
 * file there is written (see `fhir-profiles/README.md`); anything else is a load error, never silently empty.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../config.ts';

export const VALUESET_DIR = join(REPO_ROOT, 'fhir-profiles', 'valuesets');

export interface ValueSetIndex {
  /** ValueSet id → set of `system|code`. */
  readonly byId: ReadonlyMap<string, ReadonlySet<string>>;
  /** True when `system|code` is in the value set `id`. */
  has(id: string, system: string | undefined, code: string | undefined): boolean;
  ids(): string[];
}

export class ValueSetError extends Error {
  override readonly name = 'ValueSetError';
}

interface ValueSetJson {
  resourceType: string;
  id: string;
  compose?: { include?: { system?: string; concept?: { code: string }[]; filter?: unknown; valueSet?: unknown }[] };
}

let cached: ValueSetIndex | undefined;

export function loadValueSets(dir: string = VALUESET_DIR): ValueSetIndex {
  if (cached && dir === VALUESET_DIR) return cached;
  const byId = new Map<string, Set<string>>();
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.json')).sort()) {
    const vs = JSON.parse(readFileSync(join(dir, f), 'utf8')) as ValueSetJson;
    if (vs.resourceType !== 'ValueSet' || !vs.id) throw new ValueSetError(`${f} is not a ValueSet with an id`);
    const codes = new Set<string>();
    for (const inc of vs.compose?.include ?? []) {
      if (!inc.system || !inc.concept || inc.filter || inc.valueSet) throw new ValueSetError(`${f}: only explicit concept lists are supported`);
      for (const c of inc.concept) codes.add(`${inc.system}|${c.code}`);
    }
    if (codes.size === 0) throw new ValueSetError(`${f} lists no codes`);
    byId.set(vs.id, codes);
  }
  const index: ValueSetIndex = {
    byId,
    has: (id, system, code) => !!system && !!code && (byId.get(id)?.has(`${system}|${code}`) ?? false),
    ids: () => [...byId.keys()],
  };
  if (dir === VALUESET_DIR) cached = index;
  return index;
}
