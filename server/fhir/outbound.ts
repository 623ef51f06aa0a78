/**
 * Outbound requests to a server a caller named (server-side request forgery, SSRF): which addresses may be
 * connected to, a check of the host before the first request, a check of the address each request is actually sent
 * to, and a small concurrency cap.
 *
 * Address classes ({@link classifyAddress}), from the IANA special-purpose registries:
 * - `loopback` 127.0.0.0/8, ::1;
 * - `link-local` 169.254.0.0/16 (cloud metadata services live at 169.254.169.254), fe80::/10;
 * - `private` 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 (RFC 1918), 100.64.0.0/10 (RFC 6598 shared address space:
 *   carrier NAT, and some clouds' metadata services), fc00::/7 (unique local), fec0::/10 (deprecated site-local);
 * - `unspecified` 0.0.0.0/8 ("this network": a connection to 0.0.0.0 reaches the local host), ::;
 * - `public`: anything else.
 * IPv4-mapped IPv6 addresses (`::ffff:127.0.0.1`) are classed as the IPv4 address they carry (node:net BlockList
 * does that), so they cannot be used to slip a loopback address past the check.
 *
 * Two checks, because a name can resolve differently twice (DNS rebinding):
 * 1. {@link checkHost} resolves the host (all addresses) before anything is sent and refuses when any address is not
 *    allowed by the {@link AddressPolicy};
 * 2. {@link withConnectionPolicy} runs a request function under a policy and checks the remote address of the socket
 *    each of its requests goes out on, just before the request headers are written. A refused socket is destroyed:
 *    nothing of the request (path, bearer token) is sent. Node's `fetch` is undici; undici publishes
 *    `undici:request:create` (in the caller's async context) and `undici:client:sendHeaders` (with the socket) on
 *    `node:diagnostics_channel`, the documented way to observe it. The policy travels with the caller's async context
 *    (AsyncLocalStorage), so only the requests made inside `withConnectionPolicy` are checked and every other request
 *    of the process is untouched. Written here instead of a custom DNS `lookup` on an undici `Agent` because Node's
 *    built-in `fetch` takes no dispatcher without adding the `undici` package, and the FHIR client uses `fetch`.
 *    Fail-closed: a request that was created under a policy but never reached the check is an {@link OutboundGuardError}.
 * @see https://www.iana.org/assignments/iana-ipv4-special-registry/
 * @see https://www.iana.org/assignments/iana-ipv6-special-registry/
 * @see https://undici.nodejs.org/#/docs/api/DiagnosticsChannel
 * @see https://owasp.org/www-community/attacks/Server_Side_Request_Forgery
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import diagnostics from 'node:diagnostics_channel';
import { lookup as dnsLookup } from 'node:dns/promises';
import { BlockList, isIP, type Socket } from 'node:net';

export type AddressClass = 'public' | 'loopback' | 'private' | 'link-local' | 'unspecified';

const RANGES: readonly (readonly [Exclude<AddressClass, 'public'>, string, number, 'ipv4' | 'ipv6'])[] = [
  ['unspecified', '0.0.0.0', 8, 'ipv4'],
  ['loopback', '127.0.0.0', 8, 'ipv4'],
  ['link-local', '169.254.0.0', 16, 'ipv4'],
  ['private', '10.0.0.0', 8, 'ipv4'],
  ['private', '172.16.0.0', 12, 'ipv4'],
  ['private', '192.168.0.0', 16, 'ipv4'],
  ['private', '100.64.0.0', 10, 'ipv4'],
  ['unspecified', '::', 128, 'ipv6'],
  ['loopback', '::1', 128, 'ipv6'],
  ['link-local', 'fe80::', 10, 'ipv6'],
  ['private', 'fc00::', 7, 'ipv6'],
  ['private', 'fec0::', 10, 'ipv6'],
];

const LISTS = new Map<Exclude<AddressClass, 'public'>, BlockList>();
for (const [cls, net, prefix, type] of RANGES) {
  let list = LISTS.get(cls);
  if (!list) LISTS.set(cls, (list = new BlockList()));
  list.addSubnet(net, prefix, type);
}

/** An IP address without URL brackets or an IPv6 zone (`fe80::1%eth0`), or undefined when it is not one. */
export function bareIp(s: string): string | undefined {
  const ip = s.replace(/^\[(.*)\]$/, '$1').replace(/%.*$/, '');
  return isIP(ip) === 0 ? undefined : ip;
}

const familyOf = (ip: string): 'ipv4' | 'ipv6' => (isIP(ip) === 4 ? 'ipv4' : 'ipv6');

/** The class of an IP address (see the module comment); throws a TypeError for something that is not one. */
export function classifyAddress(address: string): AddressClass {
  const ip = bareIp(address);
  if (ip === undefined) throw new TypeError(`not an IP address: ${address}`);
  const type = familyOf(ip);
  // Order matters only for overlaps, and there are none between the classes.
  for (const [cls, list] of LISTS) if (list.check(ip, type)) return cls;
  return 'public';
}

/** Which addresses a request may be sent to. */
export interface AddressPolicy {
  /** Address classes that may be connected to (e.g. `public`, or `loopback` for a host named `localhost`). */
  readonly allow: ReadonlySet<AddressClass>;
  /** An IP address named explicitly (an IP-literal URL): that address is allowed whatever its class. */
  readonly exactly?: string;
}

/** True when `address` may be connected to under `policy`. */
export function addressAllowed(address: string | undefined, policy: AddressPolicy): boolean {
  const ip = address === undefined ? undefined : bareIp(address);
  if (ip === undefined) return false;
  if (policy.exactly !== undefined) {
    const named = bareIp(policy.exactly);
    if (named === undefined) return false;
    // A BlockList compares the address forms (IPv4-mapped IPv6, compressed or not) the way the kernel does.
    const one = new BlockList();
    one.addAddress(named, familyOf(named));
    if (one.check(ip, familyOf(ip))) return true;
  }
  return policy.allow.has(classifyAddress(ip));
}

/** Resolves a host name to all its addresses (like `dns.lookup(host, { all: true })`). */
export type HostLookup = (hostname: string) => Promise<readonly { address: string; family: number }[]>;

/** The system resolver, all addresses, in the order the resolver gives them (what a connection would try). */
export const systemLookup: HostLookup = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

export type HostCheck = { ok: true; addresses: string[] } | { ok: false; address: string; addressClass: AddressClass };

/**
 * Checks every address `hostname` resolves to against `policy` (an IP literal is checked as it is, without a lookup).
 * A resolver failure (unknown name, no answer) is thrown as it comes: the host cannot be reached, which is not a
 * refusal.
 */
export async function checkHost(hostname: string, policy: AddressPolicy, lookup: HostLookup = systemLookup): Promise<HostCheck> {
  const literal = bareIp(hostname);
  const found = literal !== undefined ? [literal] : (await lookup(hostname)).map((a) => a.address);
  if (found.length === 0) throw new Error(`${hostname} resolved to no address`);
  for (const address of found) {
    if (!addressAllowed(address, policy)) return { ok: false, address, addressClass: bareIp(address) === undefined ? 'unspecified' : classifyAddress(address) };
  }
  return { ok: true, addresses: found };
}

/** A request made under {@link withConnectionPolicy} was about to go out to an address the policy refuses. */
export class OutboundAddressRefusedError extends Error {
  override readonly name = 'OutboundAddressRefusedError';
  constructor(readonly address: string, readonly addressClass: AddressClass | 'unknown') {
    super(`connection to a ${addressClass} address refused`);
  }
}

/** The connection check could not run for a request (Node no longer publishes the channels it relies on). */
export class OutboundGuardError extends Error {
  override readonly name = 'OutboundGuardError';
}

interface GuardState {
  readonly policy: AddressPolicy;
  created: number;
  checked: number;
  refused?: OutboundAddressRefusedError;
}

const context = new AsyncLocalStorage<GuardState>();
/** undici request object → the policy it was created under. */
const marked = new WeakMap<object, GuardState>();
let installed = false;

function onRequestCreate(message: unknown): void {
  const st = context.getStore();
  const request = (message as { request?: object }).request;
  if (!st || !request) return;
  marked.set(request, st);
  st.created++;
}

function onSendHeaders(message: unknown): void {
  const { request, socket } = message as { request?: object; socket?: Socket };
  const st = request ? marked.get(request) : undefined;
  if (!st) return;
  st.checked++;
  const address = socket?.remoteAddress;
  if (addressAllowed(address, st.policy)) return;
  const ip = address === undefined ? undefined : bareIp(address);
  st.refused = new OutboundAddressRefusedError(address ?? 'none', ip === undefined ? 'unknown' : classifyAddress(ip));
  // Destroying the socket here, before undici writes the request line and headers, sends nothing of the request.
  socket?.destroy(st.refused);
}

function install(): void {
  if (installed) return;
  diagnostics.subscribe('undici:request:create', onRequestCreate);
  diagnostics.subscribe('undici:client:sendHeaders', onSendHeaders);
  installed = true;
}

/**
 * Runs `f` so that every `fetch` it makes is sent only over a socket whose remote address `policy` allows. A refused
 * request makes `f` fail; that failure is replaced by the {@link OutboundAddressRefusedError}. With
 * `expectRequest`, `f` succeeding without any checked request is an {@link OutboundGuardError} (fail closed when the
 * check did not run).
 */
export async function withConnectionPolicy<T>(policy: AddressPolicy, f: () => Promise<T>, o: { expectRequest?: boolean } = {}): Promise<T> {
  install();
  const st: GuardState = { policy, created: 0, checked: 0 };
  let value: T;
  try {
    value = await context.run(st, f);
  } catch (err) {
    if (st.refused) throw st.refused;
    throw err;
  }
  if (st.refused) throw st.refused;
  if (st.checked < st.created || (o.expectRequest && st.checked === 0)) {
    throw new OutboundGuardError(`the remote address of ${st.created - st.checked || 1} outbound request(s) was not checked`);
  }
  return value;
}

/**
 * At most `size` tasks at a time; the others wait their turn in arrival order. Hand-written: ten lines, and the
 * libraries that do it (p-limit and the like) would be a dependency for that.
 */
export class Semaphore {
  #free: number;
  readonly #waiting: (() => void)[] = [];

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`a semaphore needs a size of at least 1, got ${size}`);
    this.#free = size;
  }

  /** Tasks running now. */
  get active(): number {
    return this.size - this.#free;
  }

  async run<T>(f: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    try {
      return await f();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    }
  }
}
