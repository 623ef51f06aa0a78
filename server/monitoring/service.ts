/**
 * Production monitoring of the radiograph T-score estimate against measured DXA, run inside the service: every
 * `MONITORING_POLL_S` seconds the poller pairs new DXA results (poller.ts), then the per-series figures and drift
 * alarms are evaluated (figures.ts) and exported as Prometheus gauges on `/metrics`:
 *
 * | gauge | labels | value |
 * |---|---|---|
 * | `frcds_tscore_monitor_pairs` | site, model, calibration | pairs in the rolling window |
 * | `frcds_tscore_monitor_r` | 〃 | Pearson r (absent with < 3 pairs) |
 * | `frcds_tscore_monitor_bias` | 〃 | mean(estimate − DXA), T units |
 * | `frcds_tscore_monitor_coverage` | 〃 | share of DXA values inside the 95 % interval |
 * | `frcds_tscore_monitor_alarm` | 〃 | 1 while the drift alarm is raised |
 *
 * The figures come from the shared store, so every replica exports the same values. `/readyz`: from the first
 * evaluation that finds a drift alarm raised, the component `tscore-monitoring` is listed (mount.ts) — always ready
 * (a drift alarm is a warning for the clinical lead, not a reason to stop serving) — with a detail starting with
 * `WARNING` that names the series while an alarm is raised, and saying none is once it has cleared.
 */
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from '../logging.ts';
import { ALARM_DEFAULTS, evaluateSeries, type AlarmSettings, type SeriesFigures } from './figures.ts';
import type { TscorePoller } from './poller.ts';
import type { MonitoringStore } from './store.ts';
import type { MonitoringResponse } from './types.ts';

export interface MonitoringSettings extends AlarmSettings {
  /** Seconds between polls; 0 = no polling (`MONITORING_POLL_S`). */
  readonly pollSeconds: number;
  /** Largest radiograph–DXA gap of a pair, days (`MONITORING_PAIR_WINDOW_DAYS`). */
  readonly pairWindowDays: number;
}

export const MONITORING_DEFAULTS: MonitoringSettings = { ...ALARM_DEFAULTS, pollSeconds: 300, pairWindowDays: 730 };

export const MONITORING_NOTICE = 'Research use — trained on synthetic data. Agreement of the radiograph T-score estimate with measured DXA; not for clinical decisions.';

type Labels = 'site' | 'model' | 'calibration';

export class TscoreMonitoring {
  readonly #store: MonitoringStore;
  readonly #poller: TscorePoller;
  readonly #settings: MonitoringSettings;
  readonly #logger: Logger;
  readonly #gauges: Record<'pairs' | 'r' | 'bias' | 'coverage' | 'alarm', Gauge<Labels>>;
  #timer: NodeJS.Timeout | undefined;
  #lastPoll: MonitoringResponse['lastPoll'] = null;
  #last: SeriesFigures[] = [];
  #tick: Promise<void> | undefined;
  #closed = false;

  readonly #onAlarm: ((raised: SeriesFigures[]) => void) | undefined;

  /** `onAlarm`: told after every evaluation that finds at least one alarm raised. */
  constructor(o: { store: MonitoringStore; poller: TscorePoller; settings: MonitoringSettings; logger: Logger; registry: Registry; onAlarm?: (raised: SeriesFigures[]) => void }) {
    this.#onAlarm = o.onAlarm;
    this.#store = o.store;
    this.#poller = o.poller;
    this.#settings = o.settings;
    this.#logger = o.logger;
    const gauge = (name: string, help: string): Gauge<Labels> => new Gauge({ name: `frcds_tscore_monitor_${name}`, help, labelNames: ['site', 'model', 'calibration'] as const, registers: [o.registry] });
    this.#gauges = {
      pairs: gauge('pairs', 'Radiograph–DXA pairs in the rolling monitoring window, per site, model and T-score calibration.'),
      r: gauge('r', 'Pearson r of the radiograph T-score estimate with measured DXA over the rolling window.'),
      bias: gauge('bias', 'Mean (estimate − measured DXA T-score) over the rolling window, T units.'),
      coverage: gauge('coverage', 'Share of measured DXA T-scores inside the estimate\'s 95 % interval over the rolling window.'),
      alarm: gauge('alarm', '1 while the T-score drift alarm is raised (coverage or bias beyond the MONITORING_ALARM_* limits).'),
    };
  }

  /** Polls now (unless a tick is running), then re-evaluates; never rejects (failures are logged and reported). */
  tick(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#tick ??= (async () => {
      try {
        const r = await this.#poller.poll();
        this.#lastPoll = { at: new Date().toISOString(), seen: r.seen, paired: r.paired, unpaired: r.unpaired, failed: r.failed };
        if (r.paired > 0 || r.failed > 0) this.#logger.info({ ...r }, 'T-score monitoring: DXA results polled');
      } catch (err) {
        this.#lastPoll = { at: new Date().toISOString(), error: (err as Error).message.slice(0, 200) };
        this.#logger.warn({ err: (err as Error).message.slice(0, 200) }, 'T-score monitoring: polling DXA results failed; tried again next time');
      }
      await this.figures().catch((err: unknown) => this.#logger.warn({ err: (err as Error).message.slice(0, 200) }, 'T-score monitoring: figures could not be computed'));
    })().finally(() => (this.#tick = undefined));
    return this.#tick;
  }

  /** The figures of every series from the shared store (alarms evaluated), and the gauges set from them. */
  async figures(): Promise<SeriesFigures[]> {
    const all = await evaluateSeries(this.#store, this.#settings, this.#logger);
    for (const g of Object.values(this.#gauges)) g.reset();
    for (const s of all) {
      const l = { site: s.site, model: s.model, calibration: s.calibration };
      this.#gauges.pairs.set(l, s.agreement.n);
      if (s.agreement.r !== null) this.#gauges.r.set(l, s.agreement.r);
      if (s.agreement.bias !== null) this.#gauges.bias.set(l, s.agreement.bias);
      if (s.agreement.coverage !== null) this.#gauges.coverage.set(l, s.agreement.coverage);
      this.#gauges.alarm.set(l, s.alarm.state === 'alarm' ? 1 : 0);
    }
    this.#last = all;
    const raised = all.filter((s) => s.alarm.state === 'alarm');
    if (raised.length > 0) this.#onAlarm?.(raised);
    return all;
  }

  /** The API answer (server/monitoring/types.ts). */
  async response(): Promise<MonitoringResponse> {
    const series = await this.figures();
    const s = this.#settings;
    return {
      series,
      settings: { windowPairs: s.windowPairs, minPairs: s.minPairs, minCoverage: s.minCoverage, maxAbsBias: s.maxAbsBias, pairWindowDays: s.pairWindowDays, pollSeconds: s.pollSeconds },
      lastPoll: this.#lastPoll,
      notice: MONITORING_NOTICE,
    };
  }

  /** `/readyz` component: always ready; the detail names raised alarms (from the last evaluation). */
  probe(): { ok: boolean; detail: string } {
    const alarms = this.#last.filter((s) => s.alarm.state === 'alarm');
    if (alarms.length > 0) {
      return { ok: true, detail: `WARNING T-score drift alarm: ${alarms.map((s) => `${s.site} ${s.model} (calibration ${s.calibration}): ${s.alarm.reason ?? 'raised'}`).join('; ')}` };
    }
    const polled = this.#lastPoll ? `last poll ${this.#lastPoll.at}${'error' in this.#lastPoll ? ' failed' : ''}` : this.#settings.pollSeconds > 0 ? 'not polled yet' : 'polling off (MONITORING_POLL_S=0)';
    return { ok: true, detail: `no drift alarm; ${this.#last.length} series; ${polled}` };
  }

  /**
   * Polls after `firstDelayMs` (default 15 s: the FHIR server, the sandbox above all, is usually still starting
   * with the service), then every `pollSeconds`; nothing when `pollSeconds` is 0.
   */
  start(firstDelayMs = 15_000): void {
    if (this.#settings.pollSeconds <= 0 || this.#timer) return;
    const every = (): void => {
      void this.tick();
      this.#timer = setInterval(() => void this.tick(), this.#settings.pollSeconds * 1000);
      this.#timer.unref();
    };
    this.#timer = setTimeout(every, Math.min(firstDelayMs, this.#settings.pollSeconds * 1000));
    this.#timer.unref();
  }

  async close(): Promise<void> {
    clearTimeout(this.#timer);
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#closed = true;
    await this.#tick;
  }
}
