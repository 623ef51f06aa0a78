/**
 * Wiring of report events and durable jobs into the service (`server/index.ts`):
 * - at once: the queue (SQLite file, or BullMQ with `REDIS_URL`), the receiver at `/api/events` and `/api/jobs`;
 * - when the risk engine is ready: the in-process worker (unless `JOBS_IN_PROCESS_WORKER=false`);
 * - with the sandbox FHIR server: a few demo reports set to `preliminary`, the sandbox's notifier, and the
 *   service's own topic Subscription, so marking a report final in the sandbox reaches the jobs with no setup.
 *   `EVENTS_AUTH=secret`: the Subscription carries the shared secret in `channel.header`. `EVENTS_AUTH=jwt`: it
 *   carries nothing; the notifier signs every delivery with the sandbox authorization server's key, which the
 *   composition root hands over ({@link NotificationSigningKey}), and the receiver verifies with its public keys.
 */
import { randomBytes } from 'node:crypto';
import type { RequestHandler } from 'express';
import { createLocalJWKSet, createRemoteJWKSet, type JWTVerifyGetKey } from 'jose';
import type { Registry } from 'prom-client';
import type { AppConfig } from '../config.ts';
import type { Logger } from '../logging.ts';
import { createJobMetrics, type JobMetrics } from '../jobs/metrics.ts';
import { createJobsRouter } from '../jobs/routes.ts';
import { configuredTriage, createQueue, createRunner, type Assessor, type RunnableQueue } from '../jobs/runtime.ts';
import type { SandboxRepository } from '../sandbox/fhir/repo.ts';
import { attachSubscriptionNotifier, markReportsPreliminary, type SandboxNotifier } from '../sandbox/fhir/subscriptions.ts';
import type { ReplayCache } from '../state/types.ts';
import { createAuthenticator } from './auth.ts';
import { NotificationJwtVerifier, type NotificationSigningKey } from './jwt.ts';
import { createEventsRouter } from './receiver.ts';
import { buildSubscription } from './subscription.ts';

/** Id of the Subscription the service registers in its own sandbox. */
export const SANDBOX_SUBSCRIPTION_ID = 'frcds-report-events';

export interface ReportEvents {
  readonly events: RequestHandler;
  readonly jobs: RequestHandler;
  readonly metrics: JobMetrics;
  /** The queue, once opened (undefined if it failed to open: see the log). */
  queue(): RunnableQueue | undefined;
  /** Starts the in-process worker on this risk service (called when the models are loaded). */
  useRiskService(risk: Assessor): Promise<void>;
  /**
   * Demo set-up of the sandbox FHIR server (preliminary reports, notifier, own Subscription). `signer`: the sandbox
   * authorization server's key, which signs notifications when `EVENTS_AUTH=jwt` (without it, jwt mode registers
   * no Subscription).
   */
  attachSandbox(repo: SandboxRepository, signer?: NotificationSigningKey): Promise<void>;
  close(): Promise<void>;
}

export interface ReportEventsOptions {
  readonly config: AppConfig;
  readonly logger: Logger;
  readonly registry: Registry;
  /** Where notification `jti`s are remembered (`EVENTS_AUTH=jwt`): the replicas' shared replay cache; default this process's memory. */
  readonly replay?: ReplayCache;
}

/** Lifetime of the tokens the sandbox signs for its notifications, seconds (well under the 5 min accepted). */
const SANDBOX_NOTIFICATION_TOKEN_LIFETIME_S = 60;

/** The notification endpoint as the world calls it: the `aud` of notification JWTs. */
export function notificationAudience(config: AppConfig): string {
  return `${config.publicBaseUrl}/api/events/notifications`;
}

/** The URL the service itself can reach its notification endpoint at (loopback, like the sandboxes). */
export function selfNotificationUrl(config: AppConfig): string {
  const self = config.fhir.sandbox ? config.fhir.baseUrl.replace(/\/sandbox\/fhir$/, '') : config.publicBaseUrl;
  return `${self}/api/events/notifications`;
}

export function startReportEvents(opts: ReportEventsOptions): ReportEvents {
  const { config, logger } = opts;
  const log = logger.child({ component: 'events' });
  let queue: RunnableQueue | undefined;
  const metrics = createJobMetrics(opts.registry, () => queue);
  try {
    queue = createQueue(config, logger, metrics);
  } catch (err) {
    log.error({ error: (err as Error).message }, 'the job queue could not be opened: report events are refused (503)');
  }
  const jwtMode = config.events.auth === 'jwt';
  if (jwtMode && config.events.secret) log.warn('EVENTS_SECRET is set but EVENTS_AUTH=jwt: the secret is not used (notifications need a signed token)');
  // With the sandbox and no configured secret, a random one: only this process's own Subscription knows it.
  const secret = jwtMode ? undefined : config.events.secret ?? (config.fhir.sandbox ? randomBytes(24).toString('base64url') : undefined);
  // jwt mode: the keys at EVENTS_JWKS_URL (jose caches them and re-fetches on an unknown kid, so rotation needs no
  // restart), else — sandbox only — the sandbox signer's, known once attachSandbox hands them over.
  let keys: JWTVerifyGetKey | undefined = jwtMode && config.events.jwksUrl
    ? createRemoteJWKSet(new URL(config.events.jwksUrl), { timeoutDuration: 2000, cooldownDuration: 30_000, cacheMaxAge: 600_000 })
    : undefined;
  const auth = createAuthenticator(
    jwtMode
      ? { type: 'jwt', verifier: new NotificationJwtVerifier({ issuer: config.events.jwtIssuer!, audience: notificationAudience(config), keys: () => keys, ...(opts.replay ? { replay: opts.replay } : {}) }) }
      : { type: 'secret', header: config.events.secretHeader, secret },
  );
  const events = createEventsRouter({ queue: () => queue, auth, logger, metrics });
  const jobs = createJobsRouter(() => queue);
  let notifier: SandboxNotifier | undefined;

  return {
    events,
    jobs,
    metrics,
    queue: () => queue,
    async useRiskService(risk) {
      if (!queue || !config.jobs.inProcessWorker) return;
      const triage = await configuredTriage(config, logger);
      queue.start(createRunner({ risk, triage, coordination: queue.coordination, logger }), config.jobs.concurrency);
      log.info({ backend: queue.backend, concurrency: config.jobs.concurrency }, 'report-event worker started');
    },
    async attachSandbox(repo, signer) {
      const preliminary = await markReportsPreliminary(repo);
      let sign: ((endpoint: string, sub: { id?: string }) => Promise<string>) | undefined;
      if (jwtMode && signer) {
        if (!config.events.jwksUrl) keys = createLocalJWKSet(signer.jwks());
        // The service's own Subscription points at the loopback URL but is verified against the public one (see
        // notificationAudience); any other Subscription's token is bound to that Subscription's endpoint.
        const self = selfNotificationUrl(config);
        sign = (endpoint, sub) =>
          signer.signJwt({ sub: `${config.fhir.publicBaseUrl}/Subscription/${sub.id ?? ''}` }, { audience: endpoint === self ? notificationAudience(config) : endpoint, lifetimeSeconds: SANDBOX_NOTIFICATION_TOKEN_LIFETIME_S });
      }
      notifier = attachSubscriptionNotifier(repo, { baseUrl: config.fhir.publicBaseUrl, logger, ...(sign ? { sign } : {}) });
      if (jwtMode && !sign) {
        log.warn('EVENTS_AUTH=jwt but the sandbox authorization server is not running: the sandbox cannot sign notifications, so no sandbox Subscription is registered');
        return;
      }
      const sub = buildSubscription({
        id: SANDBOX_SUBSCRIPTION_ID,
        endpoint: selfNotificationUrl(config),
        payload: 'id-only',
        ...(secret ? { headers: [`${config.events.secretHeader}: ${secret}`] } : {}),
      });
      await repo.updateResource(sub);
      log.info({ preliminaryReports: preliminary }, 'sandbox Subscription registered (topic: imaging DiagnosticReport became final)');
    },
    async close() {
      notifier?.close();
      await queue?.close();
    },
  };
}
