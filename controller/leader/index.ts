/**
 * Stage-side component `leader`: leader election on a coordination.k8s.io/v1 Lease.
 *
 * Takes in: a KubeClient, the Lease's namespace/name and this replica's identity.
 * Gives out: `isLeader()` and the callbacks `onStartedLeading` / `onStoppedLeading`; only
 * the leader runs the apply stage. Semantics follow client-go's leaderelection package:
 *  - every `retryPeriodMs` (default 2000) a candidate reads the Lease; it takes it when it
 *    is absent, released (no holder) or expired, i.e. its record has not changed for
 *    `leaseDurationMs` (default 15 000) as observed on the local clock (no cross-node clock
 *    comparison);
 *  - the leader renews (`renewTime`) every `retryPeriodMs`; if it cannot renew for
 *    `renewDeadlineMs` (default 10 000) it stops leading;
 *  - writes use the Lease's resourceVersion (optimistic concurrency), so two candidates
 *    can never both win: the loser gets 409 Conflict;
 *  - `release()` (on SIGTERM) clears holderIdentity so a standby takes over at its next
 *    retry instead of waiting for expiry.
 */
import { KubeError, RESOURCES, type KubeClient } from '../kube/client.js';

export interface LeaderElectorOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  onStartedLeading?: () => void;
  onStoppedLeading?: () => void;
  onError?: (err: unknown) => void;
}

interface Lease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number;
    acquireTime?: string | null;
    renewTime?: string | null;
    leaseTransitions?: number;
  };
}

const LEASE = RESOURCES['coordination.k8s.io/v1/Lease'];

/** A Lease-based leader elector. */
export class LeaderElector {
  private readonly client: KubeClient;
  private readonly o: Required<Omit<LeaderElectorOptions, 'onStartedLeading' | 'onStoppedLeading' | 'onError'>> &
    Pick<LeaderElectorOptions, 'onStartedLeading' | 'onStoppedLeading' | 'onError'>;
  private leading = false;
  private timer?: NodeJS.Timeout;
  private stopped = true;
  /** Last observed lease record (canonical) and when we saw it change, local clock. */
  private observedRecord = '';
  private observedAt = 0;
  private lastRenewOk = 0;
  private ticking?: Promise<void>;
  /** Number of times this replica became leader. */
  transitions = 0;

  constructor(client: KubeClient, opts: LeaderElectorOptions) {
    this.client = client;
    this.o = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2000, ...opts };
  }

  get identity(): string {
    return this.o.identity;
  }

  isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const loop = async () => {
      if (this.stopped) return;
      this.ticking = this.tick();
      await this.ticking;
      if (!this.stopped) this.timer = setTimeout(() => void loop(), this.leading ? this.o.retryPeriodMs : this.jitter(this.o.retryPeriodMs));
    };
    void loop();
  }

  private jitter(ms: number): number {
    return Math.round(ms * (1 + Math.random() * 0.2));
  }

  /** Stops campaigning; if leading, releases the Lease (holderIdentity cleared). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.ticking;
    if (this.leading) await this.release();
  }

  /** Clears holderIdentity if this replica holds the Lease, and stops leading. */
  async release(): Promise<void> {
    try {
      const lease = await this.client.get<Lease>(LEASE, this.o.namespace, this.o.name);
      if (lease.spec.holderIdentity === this.o.identity) {
        lease.spec = { ...lease.spec, holderIdentity: null, acquireTime: null, renewTime: null, leaseDurationSeconds: 1 };
        await this.client.replace(lease);
      }
    } catch (err) {
      this.o.onError?.(err);
    }
    this.setLeading(false);
  }

  private setLeading(v: boolean): void {
    if (v === this.leading) return;
    this.leading = v;
    if (v) {
      this.transitions++;
      this.o.onStartedLeading?.();
    } else {
      this.o.onStoppedLeading?.();
    }
  }

  /** One election round. */
  private async tick(): Promise<void> {
    const now = Date.now();
    try {
      const ok = await this.tryAcquireOrRenew(now);
      if (ok) {
        this.lastRenewOk = now;
        this.setLeading(true);
      } else if (this.leading) {
        this.setLeading(false);
      }
    } catch (err) {
      this.o.onError?.(err);
      if (this.leading && Date.now() - this.lastRenewOk > this.o.renewDeadlineMs) this.setLeading(false);
    }
  }

  private async tryAcquireOrRenew(nowMs: number): Promise<boolean> {
    const stamp = rfc3339Micro(nowMs);
    const durS = Math.round(this.o.leaseDurationMs / 1000);
    let lease: Lease | undefined;
    try {
      lease = await this.client.get<Lease>(LEASE, this.o.namespace, this.o.name);
    } catch (err) {
      if (!(err instanceof KubeError && err.statusCode === 404)) throw err;
    }
    if (!lease) {
      const fresh: Lease = {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: this.o.name, namespace: this.o.namespace },
        spec: { holderIdentity: this.o.identity, leaseDurationSeconds: durS, acquireTime: stamp, renewTime: stamp, leaseTransitions: 0 },
      };
      try {
        await this.client.create(fresh);
        this.observe(fresh, nowMs);
        return true;
      } catch (err) {
        if (err instanceof KubeError && err.statusCode === 409) return false;
        throw err;
      }
    }
    const record = JSON.stringify(lease.spec);
    if (record !== this.observedRecord) this.observe(lease, nowMs);
    const holder = lease.spec.holderIdentity;
    const mine = holder === this.o.identity;
    const durMs = (lease.spec.leaseDurationSeconds ?? durS) * 1000;
    const expired = this.observedAt + durMs < nowMs;
    if (!mine && holder && !expired) return false;
    const spec = mine
      ? { ...lease.spec, renewTime: stamp, leaseDurationSeconds: durS }
      : {
          holderIdentity: this.o.identity,
          leaseDurationSeconds: durS,
          acquireTime: stamp,
          renewTime: stamp,
          leaseTransitions: (lease.spec.leaseTransitions ?? 0) + 1,
        };
    const updated: Lease = { ...lease, spec };
    try {
      const got = await this.client.replace<Lease>(updated);
      this.observe(got, nowMs);
      return true;
    } catch (err) {
      if (err instanceof KubeError && err.statusCode === 409) return false; // someone else wrote first
      throw err;
    }
  }

  private observe(lease: Lease, nowMs: number): void {
    this.observedRecord = JSON.stringify(lease.spec);
    this.observedAt = nowMs;
  }
}

/** metav1.MicroTime: RFC 3339 with microseconds, UTC. */
export function rfc3339Micro(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}
