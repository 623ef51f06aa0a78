/**
 * `npm run subscribe -- --fhir <FHIR base URL> --endpoint <notification URL> [--mode topic|criteria]
 *   [--payload id-only|full-resource] [--heartbeat <s>] [--filter <criteria>] [--token-env <VAR>]`
 *
 * Registers the service's Subscription on a FHIR server: by default a Subscriptions Backport (R4, IG 1.1.0)
 * topic-based rest-hook Subscription on the topic "imaging DiagnosticReport became final"; `--mode criteria` a plain
 * R4 `DiagnosticReport?status=final` one (the server PUTs the report to `{endpoint}/DiagnosticReport/{id}`).
 * `EVENTS_AUTH=secret`: the shared secret (`EVENTS_SECRET`, read from the environment, never from the command line,
 * so it stays out of shell history) goes into `channel.header` as `<EVENTS_SECRET_HEADER>: <secret>`; it is never
 * printed, not even inside an error message. `EVENTS_AUTH=jwt`: the Subscription carries no header at all — the FHIR
 * server must sign each notification itself (server/events/README.md). A bearer token for the FHIR server can be
 * passed in an environment variable named by `--token-env`.
 * Prints the Subscription id and status; exit 0 when the server stored it, 1 when it refused, 2 on bad arguments.
 */
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import type { Subscription } from '@medplum/fhirtypes';
import { loadConfigForCli } from '../config.ts';
import { HttpFhirClient } from '../fhir/client.ts';
import { buildSubscription } from './subscription.ts';

const USAGE = 'usage: npm run subscribe -- --fhir <FHIR base URL> --endpoint <notification URL> [--mode topic|criteria] [--payload id-only|full-resource] [--heartbeat <seconds>] [--filter <criteria>] [--token-env <VAR>]\n';

/** Where the command reads its settings and writes its output (tests pass their own). */
export interface SubscribeIo {
  readonly env: NodeJS.ProcessEnv;
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
}

export async function main(argv: string[] = process.argv.slice(2), io: SubscribeIo = { env: process.env, stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        fhir: { type: 'string' }, endpoint: { type: 'string' }, mode: { type: 'string' }, payload: { type: 'string' },
        heartbeat: { type: 'string' }, filter: { type: 'string' }, 'token-env': { type: 'string' },
      },
    }).values;
  } catch (e) {
    io.stderr.write(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const mode = args.mode ?? 'topic';
  const payload = args.payload ?? 'id-only';
  if (!args.fhir || !args.endpoint || !/^https?:\/\//.test(args.fhir) || !/^https?:\/\//.test(args.endpoint) || !['topic', 'criteria'].includes(mode) || !['id-only', 'full-resource'].includes(payload)) {
    io.stderr.write(USAGE);
    return 2;
  }
  const config = loadConfigForCli(io.env);
  if (!config) return 2;
  if (config.events.auth === 'secret' && !config.events.secret) {
    io.stderr.write('EVENTS_SECRET is not set: the service would refuse every notification. Set the same EVENTS_SECRET for the service and this command.\n');
    return 2;
  }
  const secret = config.events.auth === 'secret' ? config.events.secret : undefined;
  const audience = `${config.publicBaseUrl}/api/events/notifications`;
  const token = args['token-env'] ? io.env[args['token-env']] : undefined;
  const sub = buildSubscription({
    endpoint: args.endpoint,
    mode: mode as 'topic' | 'criteria',
    payload: payload as 'id-only' | 'full-resource',
    ...(secret ? { headers: [`${config.events.secretHeader}: ${secret}`] } : {}),
    ...(args.heartbeat ? { heartbeatSeconds: Number(args.heartbeat) } : {}),
    ...(args.filter ? { filter: args.filter } : {}),
  });
  const client = new HttpFhirClient({ baseUrl: args.fhir, timeoutMs: config.fhir.timeoutMs, ...(token ? { token } : {}) });
  try {
    const stored = await client.write<Subscription>(sub);
    io.stdout.write(`Subscription/${stored.id} stored with status ${stored.status} (${mode === 'topic' ? 'topic' : 'criteria'}: ${stored.criteria}; payload ${payload}). The server confirms it with a handshake to ${args.endpoint}.\n`);
    io.stdout.write(secret
      ? `The Subscription holds the shared secret (channel.header): let only system-level clients read Subscriptions on this FHIR server.\n`
      : `EVENTS_AUTH=jwt: the Subscription holds no secret; the FHIR server must sign each notification (iss ${config.events.jwtIssuer ?? '(EVENTS_JWT_ISSUER)'}, aud ${audience}).\n`);
    if (!secret && args.endpoint.replace(/\/+$/, '') !== audience) {
      io.stderr.write(`Warning: --endpoint is not ${audience}, the audience the service accepts (PUBLIC_BASE_URL); a server that signs aud = the endpoint will be refused.\n`);
    }
    return 0;
  } catch (e) {
    io.stderr.write(`The FHIR server refused the Subscription: ${redact((e as Error).message, secret)}\n`);
    return 1;
  }
}

/** `text` with every occurrence of `secret` replaced: error text from a server or the HTTP stack may echo it back. */
export function redact(text: string, secret: string | undefined): string {
  return secret ? text.split(secret).join('[redacted]') : text;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then((code) => process.exit(code));
}
