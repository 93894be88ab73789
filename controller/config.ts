/**
 * Controller configuration from command-line flags and environment variables (flags win),
 * parsed with commander. Produces the static {@link ControllerConfig} the pure stages read
 * plus the runtime options of the watch/batch/apply/leader machinery.
 *
 * Every flag has an environment variable (`KEA_` + upper snake case), e.g.
 * `--system-namespace` ⇔ `KEA_SYSTEM_NAMESPACE`. Run `node dist/controller/main.js --help`.
 */
import { Option, InvalidArgumentError } from 'commander';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { nonNegativeInt as int, programCommand } from '../lib/command-line.js';
import type { ControllerConfig } from './model.js';

/** Runtime options (not seen by the pure stages). */
export interface RuntimeOptions {
  /** Path of a kubeconfig; undefined = KUBECONFIG env, then in-cluster, then ~/.kube/config. */
  kubeconfig?: string;
  /** Port of the /healthz, /readyz, /metrics HTTP server (0 = ephemeral; the bound port is logged). */
  httpPort: number;
  /** Address the HTTP server binds to. */
  httpHost: string;
  leaderElection: boolean;
  leaseNamespace: string;
  leaseName: string;
  /** This replica's identity in the Lease (default: hostname_pid). */
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  /** Batch debounce and max delay, in ms. */
  debounceMs: number;
  maxDelayMs: number;
  /** Full relist period of every informer, in ms. */
  relistMs: number;
  /**
   * The leader renders every owner at least this often, in ms, whatever the incremental
   * reconcile (controller/incremental.ts) would skip: a safety net, off by default (0 = only at
   * start and after a failed apply). Each full run costs the memory of one (measured at 1000
   * ApiSchemas with 15 s: peak 165 MiB, steady 135 MiB, against 126–136 and 110 without).
   */
  fullReconcileMs: number;
  /** Maximum API requests in flight during apply. */
  concurrency: number;
  /** /healthz fails when an informer has been failing for longer than this, in ms. */
  staleAfterMs: number;
  /**
   * Base URL of the Gateway's internal listener (e.g. `http://kea-gateway.kea-system:8081`),
   * through which served OpenAPI documents of `spec.source.openapi` ApiSchemas are fetched.
   * Undefined: discovery is off (such ApiSchemas report Imported=False FetchFailed).
   */
  internalGatewayUrl?: string;
  /**
   * Period of the internal listener check (controller/internal-listener.ts), in ms; 0 = off.
   * Findings are logged (`internal listener problem`) and counted in a gauge.
   */
  internalListenerCheckMs: number;
}

export interface LoadedConfig {
  config: ControllerConfig;
  runtime: RuntimeOptions;
}

function bool(v: string): boolean {
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw new InvalidArgumentError(`expected true/false, got "${v}"`);
}

/**
 * Reads a token file (a mounted Secret key): its text without surrounding white space.
 * @throws InvalidArgumentError naming the file when it cannot be read or is empty.
 */
function readTokenFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (e) {
    throw new InvalidArgumentError(`--internal-token-file ${path}: ${(e as Error).message}`);
  }
  if (!text) throw new InvalidArgumentError(`--internal-token-file ${path} is empty`);
  return text;
}

/**
 * Parses `argv` (including the node and script entries, as `process.argv`) and `process.env`
 * (read only). `--help` prints the help text to stdout and throws (exit code 0).
 * @throws commander's CommanderError (lib/command-line.ts `programCommand`) on `--help`, an
 *   unknown flag or an invalid value, and InvalidArgumentError when no internal token is given;
 *   the message names the flag. The entrypoint turns it into an exit code
 *   (`exitOnCommandLineError`: 2, or 0 after `--help`).
 */
export function loadConfig(argv: string[] = process.argv): LoadedConfig {
  const opt = (flags: string, description: string, envName: string, def?: string | number | boolean) => {
    const o = new Option(flags, description).env(envName);
    if (def !== undefined) o.default(def);
    return o;
  };
  const cmd = programCommand('kea-controller')
    .description('KEA controller: reconciles ApiSchema and MLService into Gateway API objects')
    .addOption(opt('--kubeconfig <path>', 'kubeconfig file (default: KUBECONFIG, in-cluster, ~/.kube/config)', 'KUBECONFIG'))
    .addOption(opt('--system-namespace <ns>', 'namespace of KEA components', 'KEA_SYSTEM_NAMESPACE', 'kea-system'))
    .addOption(opt('--gateway-namespace <ns>', 'namespace of the Gateway routes attach to (default: system namespace)', 'KEA_GATEWAY_NAMESPACE'))
    .addOption(opt('--gateway-name <name>', 'name of the Gateway', 'KEA_GATEWAY_NAME', 'kea'))
    .addOption(opt('--public-listener <name>', 'Gateway listener (sectionName) of public routes', 'KEA_PUBLIC_LISTENER', 'public'))
    .addOption(opt('--internal-listener <name>', 'Gateway listener (sectionName) of internal routes', 'KEA_INTERNAL_LISTENER', 'internal'))
    .addOption(opt('--policy-service <name>', 'policy server Service name (in the system namespace)', 'KEA_POLICY_SERVICE', 'kea-policy'))
    .addOption(opt('--policy-port <port>', 'policy server Service port', 'KEA_POLICY_PORT', 8000).argParser(int('--policy-port')))
    .addOption(
      opt(
        '--internal-token <secret>',
        'shared secret internal routes require in x-kea-internal-token (prefer the env variable or --internal-token-file: a flag shows in ps)',
        'KEA_INTERNAL_TOKEN',
      ),
    )
    .addOption(
      opt(
        '--internal-token-file <path>',
        'file holding the internal token (surrounding white space ignored); used when --internal-token is not given',
        'KEA_INTERNAL_TOKEN_FILE',
      ),
    )
    .addOption(
      opt(
        '--internal-token-previous <secret>',
        'during a rotation: the previous token, still accepted by internal routes (never sent)',
        'KEA_INTERNAL_TOKEN_PREVIOUS',
      ),
    )
    .addOption(
      opt('--internal-token-next <secret>', 'during a rotation: the next token, already accepted by internal routes (never sent)', 'KEA_INTERNAL_TOKEN_NEXT'),
    )
    .addOption(opt('--gateway-url <url>', 'public base URL of the gateway (docs links, curl examples)', 'KEA_GATEWAY_URL', 'http://localhost:8080'))
    .addOption(
      opt(
        '--internal-gateway-url <url>',
        'base URL of the Gateway internal listener, for fetching served OpenAPI documents (spec.source.openapi)',
        'KEA_INTERNAL_GATEWAY_URL',
      ),
    )
    .addOption(opt('--internal-domain <domain>', 'suffix of internal hostnames', 'KEA_INTERNAL_DOMAIN', 'kea.internal'))
    .addOption(
      opt(
        '--gateway-implementation <impl>',
        "ngf: also emit nginx-gateway-fabric's ClientSettingsPolicy and UpstreamSettingsPolicy (skipped when their CRDs are not served); generic: standard Gateway API objects only",
        'KEA_GATEWAY_IMPLEMENTATION',
        'ngf',
      ).choices(['ngf', 'generic']),
    )
    .addOption(opt('--http-port <port>', 'port of /healthz, /readyz, /metrics (0 = ephemeral)', 'KEA_HTTP_PORT', 8081).argParser(int('--http-port')))
    .addOption(opt('--http-host <addr>', 'bind address of the HTTP server', 'KEA_HTTP_HOST', '0.0.0.0'))
    .addOption(opt('--leader-election <bool>', 'elect a leader with a Lease; only the leader writes', 'KEA_LEADER_ELECTION', true).argParser(bool))
    .addOption(opt('--lease-name <name>', 'Lease name', 'KEA_LEASE_NAME', 'kea-controller'))
    .addOption(opt('--lease-namespace <ns>', 'Lease namespace (default: system namespace)', 'KEA_LEASE_NAMESPACE'))
    .addOption(opt('--identity <id>', 'this replica in the Lease (default: hostname_pid)', 'KEA_IDENTITY'))
    .addOption(opt('--lease-duration-ms <ms>', 'Lease duration', 'KEA_LEASE_DURATION_MS', 15000).argParser(int('--lease-duration-ms')))
    .addOption(
      opt('--renew-deadline-ms <ms>', 'leader gives up after failing to renew this long', 'KEA_RENEW_DEADLINE_MS', 10000).argParser(int('--renew-deadline-ms')),
    )
    .addOption(opt('--retry-period-ms <ms>', 'election/renew period', 'KEA_RETRY_PERIOD_MS', 2000).argParser(int('--retry-period-ms')))
    .addOption(opt('--debounce-ms <ms>', 'batch: quiet time before reconciling', 'KEA_DEBOUNCE_MS', 100).argParser(int('--debounce-ms')))
    .addOption(opt('--max-delay-ms <ms>', 'batch: longest delay of a burst', 'KEA_MAX_DELAY_MS', 1000).argParser(int('--max-delay-ms')))
    .addOption(opt('--relist-ms <ms>', 'informer full relist period (0 = off)', 'KEA_RELIST_MS', 300000).argParser(int('--relist-ms')))
    .addOption(
      opt(
        '--full-reconcile-ms <ms>',
        'the leader renders every owner at least this often (0 = off: only at start and after errors)',
        'KEA_FULL_RECONCILE_MS',
        0,
      ).argParser(int('--full-reconcile-ms')),
    )
    .addOption(opt('--concurrency <n>', 'max API requests in flight during apply', 'KEA_CONCURRENCY', 16).argParser(int('--concurrency')))
    .addOption(
      opt(
        '--internal-listener-check-ms <ms>',
        "how often the Gateway's internal listener is checked for admitting other namespaces or foreign routes (0 = off)",
        'KEA_INTERNAL_LISTENER_CHECK_MS',
        60000,
      ).argParser(int('--internal-listener-check-ms')),
    )
    .addOption(
      opt('--stale-after-ms <ms>', '/healthz fails when an informer fails this long', 'KEA_STALE_AFTER_MS', 120000).argParser(int('--stale-after-ms')),
    );
  cmd.parse(argv, { from: 'node' });
  const o = cmd.opts<Record<string, string | number | boolean | undefined>>();
  const systemNamespace = String(o.systemNamespace);
  const token = (o.internalToken as string | undefined) ?? (o.internalTokenFile ? readTokenFile(String(o.internalTokenFile)) : undefined);
  if (!token) {
    throw new InvalidArgumentError(
      '--internal-token-file (KEA_INTERNAL_TOKEN_FILE) or KEA_INTERNAL_TOKEN is required: the secret internal HTTPRoutes match on',
    );
  }
  const accepted = [o.internalTokenPrevious, o.internalTokenNext].map((v) => (typeof v === 'string' ? v.trim() : '')).filter((v) => v !== '' && v !== token);
  const config: ControllerConfig = {
    systemNamespace,
    gateway: {
      namespace: (o.gatewayNamespace as string | undefined) ?? systemNamespace,
      name: String(o.gatewayName),
      publicListener: String(o.publicListener),
      internalListener: String(o.internalListener),
    },
    policyServer: { name: String(o.policyService), port: Number(o.policyPort) },
    internalToken: token,
    ...(accepted.length ? { acceptedInternalTokens: accepted } : {}),
    gatewayUrl: String(o.gatewayUrl).replace(/\/$/, ''),
    internalDomain: String(o.internalDomain),
    gatewayImplementation: o.gatewayImplementation === 'generic' ? 'generic' : 'ngf',
  };
  const runtime: RuntimeOptions = {
    kubeconfig: o.kubeconfig as string | undefined,
    httpPort: Number(o.httpPort),
    httpHost: String(o.httpHost),
    leaderElection: Boolean(o.leaderElection),
    leaseNamespace: (o.leaseNamespace as string | undefined) ?? systemNamespace,
    leaseName: String(o.leaseName),
    identity: (o.identity as string | undefined) ?? `${hostname()}_${process.pid}`,
    leaseDurationMs: Number(o.leaseDurationMs),
    renewDeadlineMs: Number(o.renewDeadlineMs),
    retryPeriodMs: Number(o.retryPeriodMs),
    debounceMs: Number(o.debounceMs),
    maxDelayMs: Number(o.maxDelayMs),
    relistMs: Number(o.relistMs),
    fullReconcileMs: Number(o.fullReconcileMs),
    concurrency: Math.max(1, Number(o.concurrency)),
    staleAfterMs: Number(o.staleAfterMs),
    internalListenerCheckMs: Number(o.internalListenerCheckMs),
    ...(o.internalGatewayUrl ? { internalGatewayUrl: String(o.internalGatewayUrl) } : {}),
  };
  return { config, runtime };
}
