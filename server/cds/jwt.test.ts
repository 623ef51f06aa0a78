/**
 * Where {@link CdsJwtVerifier} takes a CDS client's keys from: pinned (inline `jwks`) first, fetching a `jku` or
 * `jwksUrl` only when no pinned key fits and the URL is allowed. Every "nothing was fetched" claim is measured on a
 * real loopback HTTP server that counts connections (and never answers, so a fetch would also show as a stall).
 * The whole JWT check order is covered end to end by test/cds/conformance.test.ts.
 */
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { jwksServer, mint, signingKey, type SigningKey } from '../../test/cds/support.ts';
import { freePort } from '../../test/support/net.ts';
import { CdsClientsError, parseCdsClients } from './clients.ts';
import { CdsAuthError, CdsJwtVerifier, type CdsJwtVerifierOptions } from './jwt.ts';

const ISS = 'https://ehr.example.test';
const AUD = 'https://frcds.example.test/cds-services/fracture-risk-patient-view';

/** Accepts TCP connections, counts them and never answers: a key server that is there but would hang a fetch. */
async function blackHole(): Promise<{ url: string; connections: () => number; close(): Promise<void> }> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${port}/jwks.json`,
    connections: () => connections,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

async function rejects(p: Promise<unknown>, reason: CdsAuthError['reason']): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof CdsAuthError, `a CdsAuthError, got ${String(err)}`);
    assert.equal(err.reason, reason, err.message);
    return true;
  });
}

let pinned: SigningKey;
let stranger: SigningKey;
let hole: Awaited<ReturnType<typeof blackHole>>;
let served: Awaited<ReturnType<typeof jwksServer>>;

before(async () => {
  pinned = await signingKey('ES384');
  stranger = await signingKey('ES384');
  hole = await blackHole();
  served = await jwksServer([pinned.jwk]);
});
after(async () => {
  await hole.close();
  await served.close();
});

/** A verifier for one client built through the config parser, as at start-up. */
function verifier(entry: Record<string, unknown>, extra: Partial<CdsJwtVerifierOptions> = {}): CdsJwtVerifier {
  const clients = parseCdsClients({ clients: [{ id: 'ehr', label: 'EHR', enabled: true, iss: ISS, algorithms: ['ES384'], ...entry }] as never }, 'https://frcds.example.test');
  // A long fetch time-out: a fetch of the black hole would stall the test for seconds, not fail fast.
  return new CdsJwtVerifier({ clients, jtiTtlS: 3600, clockSkewS: 60, jwksTimeoutMs: 5000, jwksCooldownMs: 0, ...extra });
}

const bearer = async (key: SigningKey, jku?: string): Promise<string> => `Bearer ${await mint({ iss: ISS, aud: AUD, key, ...(jku ? { jku } : {}) })}`;

describe('CDS client keys: pinned first, fetched only when allowed and needed', () => {
  test('a pinned kid is verified offline: an allowlisted jku that would hang is never contacted', async () => {
    const v = verifier({ jwks: { keys: [pinned.jwk] }, jkuAllowlist: [hole.url] });
    const started = performance.now();
    const ok = await v.verify(await bearer(pinned, hole.url), AUD);
    assert.equal(ok.iss, ISS);
    assert.equal(hole.connections(), 0, 'the jku was not fetched');
    assert.ok(performance.now() - started < 1000, 'no wait on the key server');
  });

  test('a pinned kid with a jku that is NOT allowlisted is verified with the pinned key (nothing fetched)', async () => {
    const v = verifier({ jwks: { keys: [pinned.jwk] } });
    const before = hole.connections();
    const ok = await v.verify(await bearer(pinned, hole.url), AUD);
    assert.equal(ok.client.id, 'ehr');
    assert.equal(hole.connections(), before);
  });

  test('a pinned kid is preferred over jwksUrl too (no fetch)', async () => {
    const v = verifier({ jwks: { keys: [pinned.jwk] }, jwksUrl: hole.url });
    const before = hole.connections();
    await v.verify(await bearer(pinned), AUD);
    assert.equal(hole.connections(), before);
  });

  test('rotation: a new kid not pinned, with an allowlisted reachable jku, is accepted after one fetch', async () => {
    const next = await signingKey('ES384');
    served.set([pinned.jwk, next.jwk]);
    try {
      const v = verifier({ jwks: { keys: [pinned.jwk] }, jkuAllowlist: [served.url] });
      const hits = served.hits();
      await v.verify(await bearer(pinned, served.url), AUD);
      assert.equal(served.hits(), hits, 'the pinned kid needs no fetch');
      const ok = await v.verify(await bearer(next, served.url), AUD);
      assert.equal(ok.iss, ISS);
      assert.equal(served.hits(), hits + 1, 'the new kid was fetched once');
      await v.verify(await bearer(next, served.url), AUD);
      assert.equal(served.hits(), hits + 1, 'then served from the cached set');
    } finally {
      served.set([pinned.jwk]);
    }
  });

  test('rotation through jwksUrl: a kid not pinned is looked up there', async () => {
    const next = await signingKey('ES384');
    served.set([next.jwk]);
    try {
      const v = verifier({ jwks: { keys: [pinned.jwk] }, jwksUrl: served.url });
      const hits = served.hits();
      await v.verify(await bearer(next), AUD);
      assert.equal(served.hits(), hits + 1);
    } finally {
      served.set([pinned.jwk]);
    }
  });

  test('a kid not pinned with a jku not on the allowlist is refused without a fetch', async () => {
    const v = verifier({ jwks: { keys: [pinned.jwk] }, jkuAllowlist: [served.url] });
    const before = hole.connections();
    await rejects(v.verify(await bearer(stranger, hole.url), AUD), 'jku-not-allowed');
    assert.equal(hole.connections(), before);
  });

  test('a kid not pinned, no jku, no jwksUrl: refused (no key), nothing fetched', async () => {
    const v = verifier({ jwks: { keys: [pinned.jwk] }, jkuAllowlist: [hole.url] });
    const before = hole.connections();
    await rejects(v.verify(await bearer(stranger), AUD), 'no-key');
    assert.equal(hole.connections(), before);
  });

  test('a signature by another key under a pinned kid is refused, and the allowlisted jku is not consulted', async () => {
    const forger: SigningKey = { ...stranger, kid: pinned.kid };
    // The jku would even vouch for the forger: it must not be asked.
    served.set([{ ...stranger.jwk, kid: pinned.kid }]);
    try {
      const v = verifier({ jwks: { keys: [pinned.jwk] }, jkuAllowlist: [served.url] });
      const hits = served.hits();
      await rejects(v.verify(await bearer(forger, served.url), AUD), 'signature');
      assert.equal(served.hits(), hits, 'a failed pinned key is not a reason to fetch');
    } finally {
      served.set([pinned.jwk]);
    }
  });

  test('without pinned keys an allowlisted jku is fetched as before', async () => {
    const v = verifier({ jkuAllowlist: [served.url] });
    const hits = served.hits();
    await v.verify(await bearer(pinned, served.url), AUD);
    assert.equal(served.hits(), hits + 1);
  });

  test('an algorithm the pinned key is not for falls through to the remote set (here: none allowed → refused)', async () => {
    const es256 = await signingKey('ES256');
    const v = verifier({ jwks: { keys: [{ ...es256.jwk, kid: pinned.kid }] }, algorithms: ['ES384', 'ES256'] });
    // The pinned key under that kid is ES256; a token says ES384 with that kid → no pinned fit, no remote → no-key.
    await rejects(v.verify(await bearer(pinned), AUD), 'no-key');
  });
});

describe('pinned keys are checked at start-up', () => {
  const parse = (jwks: unknown) => parseCdsClients({ clients: [{ id: 'ehr', label: 'EHR', enabled: true, iss: ISS, jwks }] as never }, 'https://x.test');

  test('a duplicated kid is a configuration error', () => {
    assert.throws(() => parse({ keys: [pinned.jwk, { ...stranger.jwk, kid: pinned.kid }] }), (e: unknown) => e instanceof CdsClientsError && /listed twice/.test(e.message));
  });
  test('a truncated key is a configuration error naming it', () => {
    const { y: _y, ...broken } = pinned.jwk;
    assert.throws(() => parse({ keys: [broken] }), (e: unknown) => e instanceof CdsClientsError && e.message.includes(pinned.kid) && /not a usable public key/.test(e.message));
  });
  test('a private key is refused', () => {
    assert.throws(() => parse({ keys: [{ ...pinned.jwk, d: 'AAAA' }] }), CdsClientsError);
  });
  test('a well-formed set parses', () => {
    assert.equal(parse({ keys: [pinned.jwk, stranger.jwk] })[0]?.jwks?.keys.length, 2);
  });
});

describe('claims the direct pinned-key check relies on the verifier for', () => {
  const signed = async (claims: Record<string, unknown>): Promise<string> => {
    const { SignJWT } = await import('jose');
    const now = Math.floor(Date.now() / 1000);
    return `Bearer ${await new SignJWT(claims).setProtectedHeader({ alg: 'ES384', typ: 'JWT', kid: pinned.kid }).setIssuer(ISS).setAudience(AUD).setIssuedAt(now).setExpirationTime(now + 300).setJti(crypto.randomUUID()).sign(pinned.privateKey)}`;
  };
  test('nbf in the future (beyond the skew) is refused; nbf now is accepted; a non-numeric nbf is refused', async () => {
    const v = verifier({ jwks: { keys: [pinned.jwk] } });
    const now = Math.floor(Date.now() / 1000);
    await rejects(v.verify(await signed({ nbf: now + 600 }), AUD), 'claims');
    await rejects(v.verify(await signed({ nbf: 'soon' }), AUD), 'claims');
    assert.equal((await v.verify(await signed({ nbf: now }), AUD)).iss, ISS);
  });
});
