/**
 * Where and how to reach the Kubernetes API: a minimal kubeconfig / in-cluster loader.
 *
 * Why not `@kubernetes/client-node`'s KubeConfig: importing it loads the whole generated
 * client (every API group and model), measured +82 MiB RSS (41 → 123 MiB) and ~20 MB of
 * retained source text in the controller process, against a 150 MiB budget at 1000
 * ApiSchemas (docs/performance.md, "Controller scale"). KEA needs only the common auth
 * methods, so this loader supports exactly those and fails loudly on anything else.
 *
 * Supported: kubeconfig `clusters[].cluster.{server, certificate-authority(-data),
 * insecure-skip-tls-verify, tls-server-name}`, `users[].user.{client-certificate(-data),
 * client-key(-data), token, tokenFile}`, `current-context`; in-cluster service account
 * (KUBERNETES_SERVICE_HOST/PORT, /var/run/secrets/kubernetes.io/serviceaccount). Not
 * supported (throws): exec plugins, auth-provider, username/password.
 */
import { readFileSync, existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { parse } from 'yaml';

/** Connection and credentials for one API server. */
export interface ClusterAuth {
  /** `https://host:port` without a trailing slash. */
  server: string;
  /** PEM CA bundle (undefined: system roots). */
  ca?: string;
  /** PEM client certificate and key (mTLS). */
  cert?: string;
  key?: string;
  /** Static bearer token. */
  token?: string;
  /** File holding a bearer token, re-read every minute (projected service-account tokens rotate). */
  tokenFile?: string;
  insecureSkipTlsVerify?: boolean;
  /** TLS SNI / verification name, when it differs from the server's host. */
  tlsServerName?: string;
  /** Where this came from, for logs: a kubeconfig path or `in-cluster`. */
  source: string;
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

interface RawConfig {
  'current-context'?: string;
  contexts?: Array<{ name: string; context: { cluster: string; user?: string } }>;
  clusters?: Array<{ name: string; cluster: Record<string, unknown> }>;
  users?: Array<{ name: string; user: Record<string, unknown> }>;
}

function fileOrData(base: string, file: unknown, data: unknown): string | undefined {
  if (typeof data === 'string' && data) return Buffer.from(data, 'base64').toString('utf8');
  if (typeof file === 'string' && file) return readFileSync(isAbsolute(file) ? file : resolve(base, file), 'utf8');
  return undefined;
}

/**
 * Reads a kubeconfig file.
 * @throws Error naming the file and the missing or unsupported entry.
 */
export function loadKubeconfigFile(path: string, contextName?: string): ClusterAuth {
  const raw = parse(readFileSync(path, 'utf8')) as RawConfig;
  const base = dirname(path);
  const ctxName = contextName ?? raw['current-context'];
  const ctx = raw.contexts?.find((c) => c.name === ctxName)?.context;
  if (!ctx) throw new Error(`${path}: context "${ctxName ?? ''}" not found`);
  const cluster = raw.clusters?.find((c) => c.name === ctx.cluster)?.cluster;
  if (!cluster || typeof cluster.server !== 'string') throw new Error(`${path}: cluster "${ctx.cluster}" not found or has no server`);
  const user = (ctx.user ? raw.users?.find((u) => u.name === ctx.user)?.user : undefined) ?? {};
  for (const unsupported of ['exec', 'auth-provider', 'username']) {
    if (user[unsupported] !== undefined)
      throw new Error(`${path}: user "${ctx.user}": "${unsupported}" authentication is not supported by KEA's controller; use a client certificate or a token`);
  }
  return {
    server: cluster.server.replace(/\/$/, ''),
    ca: fileOrData(base, cluster['certificate-authority'], cluster['certificate-authority-data']),
    cert: fileOrData(base, user['client-certificate'], user['client-certificate-data']),
    key: fileOrData(base, user['client-key'], user['client-key-data']),
    token: typeof user.token === 'string' ? user.token : undefined,
    tokenFile: typeof user.tokenFile === 'string' ? resolve(base, user.tokenFile) : undefined,
    insecureSkipTlsVerify: cluster['insecure-skip-tls-verify'] === true,
    tlsServerName: typeof cluster['tls-server-name'] === 'string' ? cluster['tls-server-name'] : undefined,
    source: path,
  };
}

/**
 * Finds credentials the way kubectl does: an explicit path, else `$KUBECONFIG` (first
 * entry), else in-cluster service account, else `~/.kube/config`.
 * @throws Error when none is usable.
 */
export function loadClusterAuth(path?: string): ClusterAuth {
  if (path) return loadKubeconfigFile(path);
  const env = process.env.KUBECONFIG?.split(':').find(Boolean);
  if (env) return loadKubeconfigFile(env);
  const host = process.env.KUBERNETES_SERVICE_HOST;
  if (host && existsSync(join(SA_DIR, 'token'))) {
    const port = process.env.KUBERNETES_SERVICE_PORT ?? '443';
    return {
      server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
      ca: readFileSync(join(SA_DIR, 'ca.crt'), 'utf8'),
      tokenFile: join(SA_DIR, 'token'),
      source: 'in-cluster',
    };
  }
  const home = join(homedir(), '.kube', 'config');
  if (existsSync(home)) return loadKubeconfigFile(home);
  throw new Error('no Kubernetes credentials: pass --kubeconfig, set KUBECONFIG, or run in a cluster');
}
