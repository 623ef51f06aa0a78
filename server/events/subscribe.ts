/**
 * `npm run subscribe -- --fhir <FHIR base URL> --endpoint <notification URL> [--mode topic|criteria]
 *   [--payload id-only|full-resource] [--heartbeat <s>] [--filter <criteria>] [--token-env <VAR>]`
 *
 * Registers the service's Subscription on a FHIR server: by default a Subscriptions Backport (R4, IG 1.1.0)
 * topic-based rest-hook Subscription on the topic "imaging DiagnosticReport became final"; `--mode criteria` a plain
 * R4 `DiagnosticReport?status=final` one (the server PUTs the report to `{endpoint}/DiagnosticReport/{id}`).
 * The shared secret (`EVENTS_SECRET`, read from the environment, never from the command line, so it stays out of
 * shell history) goes into `channel.header` as `<EVENTS_SECRET_HEADER>: <secret>`. A bearer token for the FHIR
 * server can be passed in an environment variable named by `--token-env`.
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

export async function main(argv: string[] = process.argv.slice(2)): Promise<number> {
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
    process.stderr.write(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const mode = args.mode ?? 'topic';
  const payload = args.payload ?? 'id-only';
  if (!args.fhir || !args.endpoint || !/^https?:\/\//.test(args.fhir) || !/^https?:\/\//.test(args.endpoint) || !['topic', 'criteria'].includes(mode) || !['id-only', 'full-resource'].includes(payload)) {
    process.stderr.write(USAGE);
    return 2;
  }
  const config = loadConfigForCli();
  if (!config) return 2;
  if (config.events.auth === 'secret' && !config.events.secret) {
    process.stderr.write('EVENTS_SECRET is not set: the service would refuse every notification. Set the same EVENTS_SECRET for the service and this command.\n');
    return 2;
  }
  const token = args['token-env'] ? process.env[args['token-env']] : undefined;
  const sub = buildSubscription({
    endpoint: args.endpoint,
    mode: mode as 'topic' | 'criteria',
    payload: payload as 'id-only' | 'full-resource',
    ...(config.events.auth === 'secret' ? { headers: [`${config.events.secretHeader}: ${config.events.secret}`] } : {}),
    ...(args.heartbeat ? { heartbeatSeconds: Number(args.heartbeat) } : {}),
    ...(args.filter ? { filter: args.filter } : {}),
  });
  const client = new HttpFhirClient({ baseUrl: args.fhir, timeoutMs: config.fhir.timeoutMs, ...(token ? { token } : {}) });
  try {
    const stored = await client.write<Subscription>(sub);
    process.stdout.write(`Subscription/${stored.id} stored with status ${stored.status} (${mode === 'topic' ? 'topic' : 'criteria'}: ${stored.criteria}; payload ${payload}). The server confirms it with a handshake to ${args.endpoint}.\n`);
    return 0;
  } catch (e) {
    process.stderr.write(`The FHIR server refused the Subscription: ${(e as Error).message}\n`);
    return 1;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then((code) => process.exit(code));
}
