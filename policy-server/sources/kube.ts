/**
 * Kubernetes configuration source: the policy ConfigMaps in the KEA system namespace.
 *
 * Takes in: a kubeconfig and the system namespace. Watches ConfigMaps labelled
 * `kea.dev/component in (api-config, api-version)` with a `@kubernetes/client-node` informer
 * (list, then watch from the list's resourceVersion). Gives out: the complete list on every
 * add/update/delete (the store debounces).
 *
 * Resilience: client-node's ListWatch stops on any non-410 error without restarting (their
 * issues #364, #958), so on `error` this source restarts the informer with exponential backoff
 * (250 ms doubling to 30 s), and relists from scratch every `relistMs` (default 5 min) so a
 * missed event cannot persist. {@link SourceHealth.lastSyncAt} is the last list or event seen.
 */
import * as k8s from '@kubernetes/client-node';
import { COMPONENT_API_CONFIG, COMPONENT_API_VERSION } from '../../lib/policy/config.js';
import type { Logger } from '../../lib/log.js';
import type { SourceConfigMap } from '../snapshot/build.js';
import type { ConfigSource, SourceHealth } from './types.js';

/** Label selector for the ConfigMaps the policy server reads. */
export const CONFIG_LABEL_SELECTOR = `kea.dev/component in (${COMPONENT_API_CONFIG},${COMPONENT_API_VERSION})`;

function toSource(cm: k8s.V1ConfigMap): SourceConfigMap {
  return {
    name: cm.metadata?.name ?? '',
    labels: { ...(cm.metadata?.labels ?? {}) },
    annotations: { ...(cm.metadata?.annotations ?? {}) },
    creationTimestamp: cm.metadata?.creationTimestamp instanceof Date ? cm.metadata.creationTimestamp.toISOString() : cm.metadata?.creationTimestamp,
    data: { ...(cm.data ?? {}) },
  };
}

/** Options of {@link KubeSource}. */
export interface KubeSourceOptions {
  kubeConfig: k8s.KubeConfig;
  namespace: string;
  logger?: Logger;
  /** Full relist period, ms (default 300000). */
  relistMs?: number;
  /** Initial restart backoff, ms (default 250); doubles up to `maxBackoffMs`. */
  backoffMs?: number;
  /** Maximum restart backoff, ms (default 30000). */
  maxBackoffMs?: number;
}

/** Watches the policy ConfigMaps with an informer that restarts itself. */
export class KubeSource implements ConfigSource {
  private informer?: k8s.Informer<k8s.V1ConfigMap> & k8s.ObjectCache<k8s.V1ConfigMap>;
  private readonly state: SourceHealth = { kind: 'kubernetes', connected: false, lastSyncAt: 0, restarts: 0 };
  private stopped = false;
  private restartTimer?: NodeJS.Timeout;
  private relistTimer?: NodeJS.Timeout;
  private backoff: number;
  private onList?: (list: SourceConfigMap[]) => void;
  private readonly opts: Required<Omit<KubeSourceOptions, 'logger'>> & { logger?: Logger };

  constructor(opts: KubeSourceOptions) {
    this.opts = { relistMs: 300_000, backoffMs: 250, maxBackoffMs: 30_000, ...opts };
    this.backoff = this.opts.backoffMs;
  }

  async start(onList: (list: SourceConfigMap[]) => void): Promise<void> {
    this.onList = onList;
    this.stopped = false;
    await this.open();
    const relist = (): void => {
      this.relistTimer = setTimeout(() => {
        if (this.stopped) return;
        void this.reopen('periodic relist').finally(relist);
      }, this.opts.relistMs);
      this.relistTimer.unref();
    };
    relist();
  }

  private emit(): void {
    if (!this.informer || this.stopped) return;
    this.state.lastSyncAt = Date.now();
    this.onList?.(this.informer.list(this.opts.namespace).map(toSource));
  }

  private async open(): Promise<void> {
    const api = this.opts.kubeConfig.makeApiClient(k8s.CoreV1Api);
    const ns = this.opts.namespace;
    const informer = k8s.makeInformer<k8s.V1ConfigMap>(
      this.opts.kubeConfig,
      `/api/v1/namespaces/${encodeURIComponent(ns)}/configmaps`,
      () => api.listNamespacedConfigMap({ namespace: ns, labelSelector: CONFIG_LABEL_SELECTOR }),
      CONFIG_LABEL_SELECTOR,
    );
    this.informer = informer;
    let failed = false;
    const changed = (): void => {
      if (this.informer === informer) this.emit();
    };
    informer.on('add', changed);
    informer.on('update', changed);
    informer.on('delete', changed);
    informer.on('error', (err: unknown) => {
      failed = true;
      if (this.informer !== informer || this.stopped) return;
      this.state.connected = false;
      this.state.lastError = err instanceof Error ? err.message : String((err as { message?: unknown })?.message ?? err);
      this.opts.logger?.warn('config watch failed; restarting', { error: this.state.lastError, backoffMs: this.backoff });
      this.scheduleRestart();
    });
    try {
      await informer.start();
    } catch (err) {
      failed = true;
      this.state.connected = false;
      this.state.lastError = (err as Error).message;
      this.scheduleRestart();
      return;
    }
    if (!failed && this.informer === informer) {
      this.state.connected = true;
      this.state.lastError = undefined;
      this.backoff = this.opts.backoffMs;
      this.emit(); // the initial list (also covers an empty list, which fires no events)
    }
  }

  private scheduleRestart(): void {
    if (this.stopped || this.restartTimer) return;
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, this.opts.maxBackoffMs);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      this.state.restarts++;
      void this.reopen('restart after error');
    }, delay);
    this.restartTimer.unref();
  }

  private async reopen(why: string): Promise<void> {
    if (this.stopped) return;
    const old = this.informer;
    this.informer = undefined;
    if (old) await old.stop().catch(() => undefined);
    this.opts.logger?.debug('config watch reopen', { why });
    await this.open();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    if (this.relistTimer) clearTimeout(this.relistTimer);
    this.restartTimer = this.relistTimer = undefined;
    const inf = this.informer;
    this.informer = undefined;
    if (inf) await inf.stop().catch(() => undefined);
  }

  health(): SourceHealth {
    return { ...this.state };
  }
}
