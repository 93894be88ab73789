/**
 * The command lines of KEA's two programs (issue 12): both parse with commander through
 * lib/command-line.ts; every flag and environment variable name that the manifests, kustomize,
 * dev/stack.ts, bench/ and the Dockerfiles pass keeps working; `--help` prints them all with
 * exit code 0; a bad flag or value ends the process with one stderr line and exit code 2; and
 * the policy server's authentication flags reach auth/config.ts through an explicit copy of the
 * environment, never by writing `process.env`.
 *
 * The process tests run the built programs (dist/; build first:
 * `node_modules/.bin/tsc -p tsconfig.build.json`).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommanderError, InvalidArgumentError } from 'commander';
import { REPO_ROOT } from '../dev/controlplane.js';
import { USAGE_EXIT_CODE, exitOnCommandLineError } from '../lib/command-line.js';
import { loadConfig } from '../controller/config.js';
import { authEnv, parseArgs } from '../policy-server/main.js';

const NODE = join(REPO_ROOT, 'node_modules/.bin/node');

/** Every controller flag; its variable is `KEA_` + upper snake case (config.ts), except `--kubeconfig` ⇔ `KUBECONFIG`. */
const CONTROLLER_FLAGS = [
  '--kubeconfig',
  '--system-namespace',
  '--gateway-namespace',
  '--gateway-name',
  '--public-listener',
  '--internal-listener',
  '--policy-service',
  '--policy-port',
  '--internal-token',
  '--internal-token-file',
  '--internal-token-previous',
  '--internal-token-next',
  '--gateway-url',
  '--internal-gateway-url',
  '--internal-domain',
  '--gateway-implementation',
  '--http-port',
  '--http-host',
  '--leader-election',
  '--lease-name',
  '--lease-namespace',
  '--identity',
  '--lease-duration-ms',
  '--renew-deadline-ms',
  '--retry-period-ms',
  '--debounce-ms',
  '--max-delay-ms',
  '--relist-ms',
  '--full-reconcile-ms',
  '--concurrency',
  '--internal-listener-check-ms',
  '--stale-after-ms',
];
const controllerEnv = (flag: string): string => (flag === '--kubeconfig' ? 'KUBECONFIG' : `KEA_${flag.slice(2).replace(/-/g, '_').toUpperCase()}`);

/** Every policy server flag and its variable (undefined: flag only). */
const POLICY_FLAGS: Record<string, string | undefined> = {
  '--host': 'KEA_LISTEN_HOST',
  '--port': 'KEA_PORT',
  '--admin-port': 'KEA_ADMIN_PORT',
  '--admin-host': 'KEA_ADMIN_HOST',
  '--upstream-url': 'KEA_INTERNAL_GATEWAY_URL',
  '--internal-token': 'KEA_INTERNAL_TOKEN',
  '--internal-token-file': 'KEA_INTERNAL_TOKEN_FILE',
  '--internal-token-reload-ms': 'KEA_INTERNAL_TOKEN_RELOAD_MS',
  '--namespace': 'KEA_SYSTEM_NAMESPACE',
  '--state-dir': 'KEA_STATE_DIR',
  '--config-dir': 'KEA_CONFIG_DIR',
  '--kubeconfig': undefined,
  '--roles-claim': 'KEA_ROLES_CLAIM',
  '--groups-claim': 'KEA_GROUPS_CLAIM',
  '--scopes-claim': 'KEA_SCOPES_CLAIM',
  '--admin-role': 'KEA_ADMIN_ROLE',
  '--cache-max-bytes': 'KEA_CACHE_MAX_BYTES',
  '--upstream-connections': 'KEA_UPSTREAM_CONNECTIONS',
  '--upstream-max-inflight': 'KEA_UPSTREAM_MAX_INFLIGHT',
  '--max-buffered-request-bytes': 'KEA_MAX_BUFFERED_REQUEST_BYTES',
  '--gateway-url': 'KEA_GATEWAY_URL',
  '--oidc-issuer': undefined,
  '--oidc-client-id': undefined,
  '--oidc-client-secret-file': undefined,
  '--oidc-audience': undefined,
  '--session-secrets-file': undefined,
  '--drain-timeout-ms': 'KEA_DRAIN_TIMEOUT_MS',
  '--workers': 'KEA_POLICY_WORKERS',
  '--ipc-timeout-ms': 'KEA_POLICY_IPC_TIMEOUT_MS',
  '--redis-url': 'KEA_REDIS_URL',
  '--redis-password': 'KEA_REDIS_PASSWORD',
  '--redis-timeout-ms': 'KEA_REDIS_TIMEOUT_MS',
};

const PROGRAMS = [
  {
    name: 'kea-controller',
    main: join(REPO_ROOT, 'dist/controller/main.js'),
    required: [],
    badValue: ['--http-port', 'eighty'],
    flags: Object.fromEntries(CONTROLLER_FLAGS.map((f) => [f, controllerEnv(f)])),
  },
  {
    name: 'kea-policy-server',
    main: join(REPO_ROOT, 'dist/policy-server/main.js'),
    required: ['--upstream-url', 'http://127.0.0.1:9'],
    badValue: ['--port', 'eighty'],
    flags: POLICY_FLAGS,
  },
];

/** Runs a built program with a clean KEA environment; its exit code, stdout and stderr. */
function run(main: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  if (!existsSync(main)) throw new Error(`${main} missing: build first (node_modules/.bin/tsc -p tsconfig.build.json)`);
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KEA_') && k !== 'KUBECONFIG'));
  const r = spawnSync(NODE, [main, ...args], { env, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.each(PROGRAMS)('$name', ({ name, main, required, badValue, flags }) => {
  test('--help lists every flag with its environment variable and exits 0', () => {
    const r = run(main, ['--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`Usage: ${name} [options]`);
    const help = r.stdout.replace(/\s+/g, ' '); // commander wraps long lines
    for (const [flag, env] of Object.entries(flags)) {
      expect(r.stdout).toMatch(new RegExp(`^\\s+${flag}[ ,=<]`, 'm'));
      if (env) expect(help).toMatch(new RegExp(`\\(.*env: ${env}\\)`));
    }
  });

  test('an unknown flag: one stderr line naming it, exit code 2', () => {
    const r = run(main, [...required, '--bogus-flag']);
    expect(r.status).toBe(USAGE_EXIT_CODE);
    expect(r.stderr).toBe(`${name}: unknown option '--bogus-flag' (see --help)\n`);
    expect(r.stdout).toBe('');
  });

  test('a bad value: one stderr line naming the flag and the value, exit code 2', () => {
    const r = run(main, [...required, ...badValue]);
    expect(r.status).toBe(USAGE_EXIT_CODE);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(`${name}: option '${badValue[0]} <`);
    expect(r.stderr).toContain(`"${badValue[1]}"`);
  });
});

describe('lib/command-line.ts exitOnCommandLineError', () => {
  const exits = (err: unknown): number[] => {
    const codes: number[] = [];
    exitOnCommandLineError('prog', err, (c) => codes.push(c));
    return codes;
  };
  test('0 after --help, 2 for any other commander error, nothing for other errors', () => {
    expect(exits(new CommanderError(0, 'commander.helpDisplayed', '(outputHelp)'))).toEqual([0]);
    expect(exits(new CommanderError(1, 'commander.unknownOption', "error: unknown option '--x'"))).toEqual([2]);
    expect(exits(new InvalidArgumentError('--internal-token-file is required'))).toEqual([2]);
    expect(exits(new Error('ECONNREFUSED'))).toEqual([]);
  });
});

describe('controller options (in process)', () => {
  test('env and flags reach the options (flags win); a bad value throws a CommanderError naming the flag', () => {
    const saved = { ...process.env };
    try {
      process.env.KEA_HTTP_PORT = '9001';
      process.env.KEA_GATEWAY_NAME = 'from-env';
      const { config, runtime } = loadConfig(['node', 'kea-controller', '--internal-token=t', '--gateway-name=from-flag']);
      expect(runtime.httpPort).toBe(9001);
      expect(config.gateway.name).toBe('from-flag');
      expect(() => loadConfig(['node', 'kea-controller', '--internal-token=t', '--debounce-ms=soon'])).toThrow(CommanderError);
      expect(() => loadConfig(['node', 'kea-controller', '--internal-token=t', '--debounce-ms=soon'])).toThrow(
        /--debounce-ms must be a non-negative integer, got "soon"/,
      );
    } finally {
      process.env = saved;
    }
  });
});

describe('policy server options (in process)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kea-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const argv = (...flags: string[]) => ['node', 'kea-policy-server', '--upstream-url', 'http://127.0.0.1:9', ...flags];

  test('env and flags reach the options (flags win), numbers parsed', () => {
    const saved = { ...process.env };
    try {
      process.env.KEA_PORT = '9100';
      process.env.KEA_POLICY_WORKERS = '2';
      process.env.KEA_GATEWAY_URL = 'http://env.example';
      const o = parseArgs(argv('--cache-max-bytes', '1024', '--gateway-url', 'http://flag.example'));
      expect(o).toMatchObject({ port: 9100, workers: 2, cacheMaxBytes: 1024, adminPort: 8001, gatewayUrl: 'http://flag.example' });
      expect(() => parseArgs(argv('--workers', 'many'))).toThrow(/--workers must be "auto" or an integer/);
      // The shared store: none by default, 50 ms per call; env and flags as for the others.
      expect(o).toMatchObject({ redisUrl: undefined, redisPassword: undefined, redisTimeoutMs: 50 });
      process.env.KEA_REDIS_URL = 'rediss://redis.example:6380/0';
      process.env.KEA_REDIS_PASSWORD = 'pw';
      expect(parseArgs(argv('--redis-timeout-ms', '20'))).toMatchObject({ redisUrl: 'rediss://redis.example:6380/0', redisPassword: 'pw', redisTimeoutMs: 20 });
      expect(() => parseArgs(argv('--redis-timeout-ms', '0'))).toThrow(/--redis-timeout-ms must be an integer 1\.\.60000, got "0"/);
    } finally {
      process.env = saved;
    }
  });

  test('authentication flags override the variables in a copy of the environment; process.env is not written', () => {
    writeFileSync(join(dir, 'client-secret'), ' s3cret\n');
    writeFileSync(join(dir, 'session-secrets'), 'a'.repeat(32) + ',' + 'b'.repeat(32) + '\n');
    const before = JSON.stringify(process.env);
    const env = { KEA_OIDC_ISSUER: 'http://env-issuer', KEA_OIDC_SCOPE: 'openid' };
    const opts = parseArgs(
      argv(
        '--gateway-url',
        'http://gw.example',
        '--oidc-issuer',
        'http://flag-issuer',
        '--oidc-client-id',
        'kea-gateway',
        '--oidc-client-secret-file',
        join(dir, 'client-secret'),
        '--oidc-audience',
        'urn:kea:gateway',
        '--session-secrets-file',
        join(dir, 'session-secrets'),
      ),
    );
    const out = authEnv(opts, env);
    expect(out).toEqual({
      KEA_OIDC_ISSUER: 'http://flag-issuer',
      KEA_OIDC_SCOPE: 'openid',
      KEA_GATEWAY_URL: 'http://gw.example',
      KEA_OIDC_CLIENT_ID: 'kea-gateway',
      KEA_OIDC_CLIENT_SECRET: 's3cret',
      KEA_OIDC_AUDIENCE: 'urn:kea:gateway',
      KEA_SESSION_SECRETS: 'a'.repeat(32) + ',' + 'b'.repeat(32),
    });
    expect(env).toEqual({ KEA_OIDC_ISSUER: 'http://env-issuer', KEA_OIDC_SCOPE: 'openid' });
    expect(JSON.stringify(process.env)).toBe(before);
  });
});
