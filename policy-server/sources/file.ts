/**
 * File configuration source (tests, benchmarks, local runs without Kubernetes).
 *
 * Takes in: a directory. Every subdirectory holding a `policy.json` is one API (its sibling
 * `openapi.json` is optional); so is every `<x>.policy.json` directly in the directory (with
 * an optional `<x>.openapi.json`). Files named `*.version.json` hold published versions:
 * `{ "service": "<ns>/<name>", "version", "digest"?, "publishedAt"?, "openapi": {...} }`.
 * Gives out: the equivalent ConfigMaps (see `lib/policy/config.ts`). The directory is polled
 * (mtime + size of each file) every `pollMs` (default 250 ms), so a change is seen within
 * that period without relying on inotify.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { COMPONENT_API_CONFIG, COMPONENT_API_VERSION, OPENAPI_KEY, POLICY_CONFIG_KEY } from '../../lib/policy/config.js';
import type { SourceConfigMap } from '../snapshot/build.js';
import type { ConfigSource, SourceHealth } from './types.js';

interface Found {
  name: string;
  policy?: string;
  openapi?: string;
  version?: string;
}

async function scan(dir: string): Promise<{ found: Found[]; signature: string }> {
  const entries = await readdir(dir, { withFileTypes: true });
  const found: Found[] = [];
  const sig: string[] = [];
  const statSig = async (p: string): Promise<boolean> => {
    try {
      const s = await stat(p);
      sig.push(`${p}:${s.mtimeMs}:${s.size}`);
      return true;
    } catch {
      return false;
    }
  };
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      const pol = join(p, POLICY_CONFIG_KEY);
      if (await statSig(pol)) {
        const oa = join(p, OPENAPI_KEY);
        found.push({ name: e.name, policy: pol, openapi: (await statSig(oa)) ? oa : undefined });
      }
    } else if (e.name.endsWith('.policy.json')) {
      await statSig(p);
      const base = e.name.slice(0, -'.policy.json'.length);
      const oa = join(dir, `${base}.openapi.json`);
      found.push({ name: base, policy: p, openapi: (await statSig(oa)) ? oa : undefined });
    } else if (e.name.endsWith('.version.json')) {
      await statSig(p);
      found.push({ name: e.name.slice(0, -'.version.json'.length), version: p });
    }
  }
  return { found, signature: sig.join('\n') };
}

/** Polls a directory of policy/openapi JSON files. */
export class FileSource implements ConfigSource {
  private timer?: NodeJS.Timeout;
  private signature = '';
  private readonly state: SourceHealth = { kind: 'file', connected: false, lastSyncAt: 0, restarts: 0 };
  private readonly dir: string;
  private readonly pollMs: number;

  /**
   * @param dir - the directory to read.
   * @param pollMs - poll period in ms (default 250).
   */
  constructor(dir: string, pollMs = 250) {
    this.dir = dir;
    this.pollMs = pollMs;
  }

  async start(onList: (list: SourceConfigMap[]) => void): Promise<void> {
    const tick = async (): Promise<void> => {
      try {
        const { found, signature } = await scan(this.dir);
        this.state.connected = true;
        this.state.lastError = undefined;
        if (signature !== this.signature) {
          const list = await this.read(found);
          this.signature = signature;
          this.state.lastSyncAt = Date.now();
          onList(list);
        }
      } catch (err) {
        this.state.connected = false;
        this.state.lastError = (err as Error).message;
      }
    };
    await tick();
    const loop = (): void => {
      this.timer = setTimeout(() => void tick().finally(() => this.timer && loop()), this.pollMs);
      this.timer.unref();
    };
    loop();
  }

  private async read(found: Found[]): Promise<SourceConfigMap[]> {
    const out: SourceConfigMap[] = [];
    for (const f of found) {
      if (f.policy) {
        const data: Record<string, string> = { [POLICY_CONFIG_KEY]: await readFile(f.policy, 'utf8') };
        if (f.openapi) data[OPENAPI_KEY] = await readFile(f.openapi, 'utf8');
        out.push({ name: `file-${f.name}`, labels: { 'kea.dev/component': COMPONENT_API_CONFIG }, annotations: {}, data });
      } else if (f.version) {
        const text = await readFile(f.version, 'utf8');
        let v: Record<string, unknown>;
        try {
          v = JSON.parse(text) as Record<string, unknown>;
        } catch {
          continue; // half-written file: the next poll sees it complete
        }
        const data: Record<string, string> = { [OPENAPI_KEY]: JSON.stringify(v.openapi ?? {}) };
        for (const k of ['service', 'version', 'digest', 'publishedAt']) if (typeof v[k] === 'string') data[k] = v[k];
        out.push({ name: `file-version-${f.name}`, labels: { 'kea.dev/component': COMPONENT_API_VERSION }, annotations: {}, data });
      }
    }
    return out;
  }

  async stop(): Promise<void> {
    const t = this.timer;
    this.timer = undefined;
    if (t) clearTimeout(t);
  }

  health(): SourceHealth {
    return { ...this.state };
  }
}
