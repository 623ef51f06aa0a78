/**
 * SMART App Launch 2 scopes: parsing and permission checks, shared by the sandbox FHIR server's enforcement and the
 * service's own `requireSmartAccess`. Pure TypeScript (no Node imports).
 *
 * Grammar: `(patient|user|system)/(<ResourceType>|*).<permissions>` where v2 permissions are a subset of `cruds` in
 * that order; the v1 forms `.read` (= `rs`), `.write` (= `cud`) and `.*` (= `cruds`) are accepted too.
 * Scopes with a v2 query restriction (`patient/Observation.rs?category=…`) are parsed but grant nothing here: the
 * sandbox does not implement granular scopes, and refusing is the safe reading.
 * @see https://hl7.org/fhir/smart-app-launch/STU2/scopes-and-launch-context.html#scopes-for-requesting-fhir-resources
 */

export type ScopeContext = 'patient' | 'user' | 'system';
/** SMART v2 permission letters: create, read, update, delete, search. */
export type Permission = 'c' | 'r' | 'u' | 'd' | 's';

export interface ResourceScope {
  readonly context: ScopeContext;
  /** A resource type or `*`. */
  readonly resourceType: string;
  readonly permissions: ReadonlySet<Permission>;
  /** A v2 granular restriction (`?category=…`); such scopes grant nothing in this implementation. */
  readonly query?: string;
  readonly raw: string;
}

const ORDER: readonly Permission[] = ['c', 'r', 'u', 'd', 's'];
const V1: Record<string, readonly Permission[]> = { read: ['r', 's'], write: ['c', 'u', 'd'], '*': ORDER };
const RESOURCE_SCOPE = /^(patient|user|system)\/(\*|[A-Z][A-Za-z]+)\.([a-z*]+)(\?.+)?$/;

/** Parses one resource scope; `undefined` for other scopes (`openid`, `launch`, …) and malformed ones. */
export function parseResourceScope(raw: string): ResourceScope | undefined {
  const m = RESOURCE_SCOPE.exec(raw);
  if (!m) return undefined;
  const [, context, resourceType, perms, query] = m;
  let permissions: Permission[];
  if (V1[perms!]) permissions = [...V1[perms!]!];
  else {
    // v2: letters in cruds order, each at most once.
    let at = 0;
    permissions = [];
    for (const ch of perms!) {
      const i = ORDER.indexOf(ch as Permission, at);
      if (i < 0) return undefined;
      permissions.push(ch as Permission);
      at = i + 1;
    }
  }
  return { context: context as ScopeContext, resourceType: resourceType!, permissions: new Set(permissions), ...(query ? { query: query.slice(1) } : {}), raw };
}

/** Splits a space-separated scope string (or passes a list through), dropping empties. */
export function scopeList(scope: string | readonly string[]): string[] {
  return (typeof scope === 'string' ? scope.split(/\s+/) : [...scope]).filter(Boolean);
}

/** The resource scopes among `scopes`. */
export function resourceScopes(scopes: string | readonly string[]): ResourceScope[] {
  return scopeList(scopes)
    .map(parseResourceScope)
    .filter((s): s is ResourceScope => s !== undefined);
}

/** The contexts (`patient`, `user`, `system`) in which `scopes` grant `permission` on `resourceType`. */
export function grantingContexts(scopes: string | readonly string[], resourceType: string, permission: Permission): Set<ScopeContext> {
  const out = new Set<ScopeContext>();
  for (const s of resourceScopes(scopes)) {
    if (s.query) continue;
    if ((s.resourceType === '*' || s.resourceType === resourceType) && s.permissions.has(permission)) out.add(s.context);
  }
  return out;
}

/**
 * Whether scope `allowed` covers scope `requested`: identical non-resource scopes, or resource scopes of the same
 * context whose type is the same (or `*`) and whose permissions include the requested ones.
 */
export function scopeCovers(allowed: string, requested: string): boolean {
  if (allowed === requested) return true;
  const a = parseResourceScope(allowed);
  const r = parseResourceScope(requested);
  if (!a || !r || a.query) return false;
  if (a.context !== r.context) return false;
  if (a.resourceType !== '*' && a.resourceType !== r.resourceType) return false;
  for (const p of r.permissions) if (!a.permissions.has(p)) return false;
  return true;
}

/** Whether any of `held` covers `required`. */
export function holdsScope(held: readonly string[], required: string): boolean {
  return held.some((h) => scopeCovers(h, required));
}
