import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Subscription } from '@medplum/fhirtypes';
import { main, redact, type SubscribeIo } from './subscribe.ts';

const SECRET = 'subscribe-test-secret-0123456789';

describe('npm run subscribe', () => {
  let server: Server;
  let fhir: string;
  let refuse = false;
  const received: Subscription[] = [];

  before(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString('utf8')));
      req.on('end', () => {
        if (refuse) {
          // A server that echoes what it was sent in its error answer.
          res.writeHead(422, { 'Content-Type': 'application/fhir+json' }).end(JSON.stringify({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'invalid', diagnostics: body }] }));
          return;
        }
        const sub = JSON.parse(body) as Subscription;
        received.push(sub);
        res.writeHead(201, { 'Content-Type': 'application/fhir+json' }).end(JSON.stringify({ ...sub, id: `s${received.length}` }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    fhir = `http://127.0.0.1:${(server.address() as AddressInfo).port}/fhir`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  const run = async (env: Record<string, string>): Promise<{ code: number; out: string }> => {
    let out = '';
    const io: SubscribeIo = { env: { PUBLIC_BASE_URL: 'https://cds.example', LOG_LEVEL: 'silent', ...env }, stdout: { write: (t: string) => (out += t) }, stderr: { write: (t: string) => (out += t) } };
    const code = await main(['--fhir', fhir, '--endpoint', 'https://cds.example/api/events/notifications'], io);
    return { code, out };
  };

  it('EVENTS_AUTH=jwt: the Subscription carries no channel.header, and the output says what the server must sign', async () => {
    const { code, out } = await run({ EVENTS_AUTH: 'jwt', EVENTS_SECRET: SECRET });
    assert.equal(code, 0, out);
    const sub = received.at(-1)!;
    assert.equal(sub.channel.header, undefined);
    assert.ok(!JSON.stringify(sub).includes(SECRET), 'the secret is not sent even though it is set');
    assert.match(out, /aud https:\/\/cds\.example\/api\/events\/notifications/);
    assert.doesNotMatch(out, /Warning/);
  });

  it('EVENTS_AUTH=secret: the secret goes into channel.header and is never printed, not even in a refusal that echoes it', async () => {
    const { code, out } = await run({ EVENTS_SECRET: SECRET });
    assert.equal(code, 0, out);
    assert.deepEqual(received.at(-1)!.channel.header, [`X-Subscription-Secret: ${SECRET}`]);
    assert.ok(!out.includes(SECRET), out);
    assert.match(out, /system-level/);
    refuse = true;
    try {
      const refused = await run({ EVENTS_SECRET: SECRET });
      assert.equal(refused.code, 1);
      assert.match(refused.out, /refused the Subscription/);
      assert.ok(!refused.out.includes(SECRET), refused.out);
    } finally {
      refuse = false;
    }
  });

  it('redact scrubs every occurrence of the secret', () => {
    assert.equal(redact(`a ${SECRET} b ${SECRET}`, SECRET), 'a [redacted] b [redacted]');
    assert.equal(redact('nothing here', undefined), 'nothing here');
  });
});
