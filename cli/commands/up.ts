/**
 * `kea up`: runs the whole KEA stack on this machine (dev/stack.ts).
 *   - foreground (default): Ctrl-C (SIGINT) or SIGTERM (what `kea down` sends) stops
 *     everything it started;
 *   - `--detach`: the same stack in a detached supervisor process (cli/detach.ts); returns once
 *     the stack is ready, printing the same URLs; `kea status` shows it, `kea down` stops it.
 * Exit status: 0 started (detached) / stopped by a signal (foreground); 1 the start failed;
 * 130 interrupted during the start.
 */
import { Option, type Command } from 'commander';
import { startStack, readStackInfo, DEFAULT_STATE_DIR, type Stack, type StackInfo } from '../../dev/stack.js';
import { chooseBridgeIndex, hostPrefixes } from '../../dev/netns.js';
import { alive, readSupervisorState, removeSupervisorState, startDetached, supervisorLog, writeSupervisorState } from '../detach.js';

function port(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`invalid port "${v}"`);
  return n;
}

function replicaCount(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 6) throw new Error(`invalid replica count "${v}" (1..6)`);
  return n;
}

function bridgeIndex(v: string): number | 'auto' {
  if (v === 'auto') return v;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 254) throw new Error(`invalid bridge index "${v}" (0..254 or auto)`);
  return n;
}

/** Parsed options of `kea up`. */
export interface UpOptions {
  stateDir: string;
  port: number;
  internalPort: number;
  idpPort: number;
  policyPort: number;
  controllerPort: number;
  redisPort: number;
  policyReplicas: number;
  bridgeIndex?: number | 'auto';
  examples: boolean;
  fresh?: boolean;
  detach?: boolean;
  supervised?: boolean;
}

/** The supervisor's command line after `kea`: the same stack options, run as `--supervised`. */
export function supervisorArgs(o: UpOptions): string[] {
  return [
    'up',
    '--state-dir',
    o.stateDir,
    '--port',
    String(o.port),
    '--internal-port',
    String(o.internalPort),
    '--idp-port',
    String(o.idpPort),
    '--policy-port',
    String(o.policyPort),
    '--controller-port',
    String(o.controllerPort),
    '--redis-port',
    String(o.redisPort),
    '--policy-replicas',
    String(o.policyReplicas),
    ...(o.bridgeIndex !== undefined ? ['--bridge-index', String(o.bridgeIndex)] : []),
    ...(o.examples ? [] : ['--no-examples']),
    ...(o.fresh ? ['--fresh'] : []),
    '--supervised',
  ];
}

/** What `kea up` prints once the stack is ready (foreground and detached alike). */
export function summaryLines(stack: StackInfo, mode: { detached: boolean; supervisorPid?: number }): string[] {
  return [
    '',
    `KEA is up (${stack.warm ? 'warm' : 'cold'} start in ${((stack.totalMs ?? 0) / 1000).toFixed(1)} s)`,
    `  gateway:     ${stack.gatewayUrl}`,
    `  docs:        ${stack.docsUrl}`,
    ...(stack.idpIssuer ? [`  OIDC issuer: ${stack.idpIssuer}`] : []),
    `  demo logins: ${stack.demoLogins.join(', ')}`,
    `  kubectl:     export KUBECONFIG=${stack.kubeconfig}`,
    ...(stack.redis ? [`  redis:       ${stack.redis.url} (password in ${stack.redis.passwordFile})`] : []),
    `  logs:        ${stack.stateDir}/logs`,
    ...(stack.upgrades?.length ? [`  upgrade demo: ${stack.upgrades.map((f) => `kubectl apply --server-side -f ${f}`).join('; ')}`] : []),
    '  steps:',
    ...stack.steps.map(
      (s) => `    ${s.status.padEnd(7)} ${s.step.padEnd(14)} ${String(s.ms).padStart(6)} ms${s.detail && s.status !== 'ok' ? `  (${s.detail})` : ''}`,
    ),
    '',
    mode.detached
      ? `Running in the background (supervisor pid ${mode.supervisorPid}, log ${supervisorLog(stack.stateDir)}): \`kea status\` shows it, \`kea down\` stops everything.`
      : 'Ctrl-C or `kea down` stops everything.',
  ];
}

/** Fails at once (before minutes of start-up) when the wanted bridge subnet is routed elsewhere (dev/netns.ts). */
async function checkBridge(o: UpOptions): Promise<void> {
  if (o.bridgeIndex === 'auto') chooseBridgeIndex({}, await hostPrefixes());
  else chooseBridgeIndex({ index: o.bridgeIndex ?? 0, orFirstFree: o.bridgeIndex === undefined }, await hostPrefixes());
}

/** Refuses to start a second stack on the same state dir. */
async function checkNotRunning(stateDir: string): Promise<void> {
  const sup = await readSupervisorState(stateDir);
  if (sup && sup.state !== 'failed' && alive(sup.pid))
    throw new Error(`a detached stack is already running (pid ${sup.pid}); \`kea status\` shows it, \`kea down\` stops it`);
  const info = await readStackInfo(stateDir);
  if (info && alive(info.ownerPid) && info.ownerPid !== process.pid)
    throw new Error(`a stack is already running (pid ${info.ownerPid}); run \`kea down\` first`);
}

/** Registers `kea up` on the program. */
export function register(program: Command): void {
  program
    .command('up')
    .description('start the local stack: control plane, gateway (NGF + nginx), Redis, dev IdP, two policy-server replicas, controller and the examples')
    .option('--state-dir <dir>', 'state, logs and pid files', DEFAULT_STATE_DIR)
    .option('--port <n>', 'gateway public listener port', port, 8080)
    .option('--internal-port <n>', 'gateway internal listener port', port, 8081)
    .option('--idp-port <n>', 'dev OpenID provider port', port, 9000)
    .option('--policy-port <n>', 'policy server port (on the bridge address, 10.213.0.1 with kea0)', port, 8000)
    .option('--controller-port <n>', 'controller health/metrics port', port, 8082)
    .option('--redis-port <n>', 'Redis port (on the bridge address, 10.213.0.1 with kea0)', port, 6379)
    .option(
      '--policy-replicas <n>',
      'policy-server replicas behind the gateway, 1..6 (each on its own bridge address: 10.213.0.1, .254, .253, ...)',
      replicaCount,
      2,
    )
    .option(
      '--bridge-index <n|auto>',
      'bridge kea<n> and its subnet 10.213.<n>.0/24 (default: 0, or the first free one when 10.213.0.0/24 is already routed on this machine; auto: the first free one in 1..254)',
      bridgeIndex,
    )
    .option('--no-examples', 'do not apply examples/*/kea.yaml')
    .option('--fresh', 'wipe the local control plane data first (cold start)')
    .option('-d, --detach', 'run in the background: return once the stack is ready (`kea status`, `kea down`)')
    .addOption(new Option('--supervised', 'internal: the detached supervisor process').hideHelp())
    .action(async (o: UpOptions) => {
      try {
        await checkNotRunning(o.stateDir);
        await checkBridge(o);
      } catch (e) {
        process.stderr.write(`kea up: ${e instanceof Error ? e.message : String(e)}\n`);
        process.exit(1);
      }
      if (o.detach) return detach(o);
      return foreground(o);
    });
}

async function detach(o: UpOptions): Promise<void> {
  const abort = new AbortController();
  const onSignal = () => {
    process.stderr.write('\ninterrupted: stopping the detached stack...\n');
    abort.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const sup = await startDetached({ stateDir: o.stateDir, args: supervisorArgs(o), signal: abort.signal });
    const info = await readStackInfo(o.stateDir);
    if (!info) throw new Error(`the supervisor (pid ${sup.pid}) reports running but ${o.stateDir}/stack.json is missing`);
    process.stdout.write(`${summaryLines(info, { detached: true, supervisorPid: sup.pid }).join('\n')}\n`);
    process.exit(0);
  } catch (e) {
    process.stderr.write(`kea up --detach: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(abort.signal.aborted ? 130 : 1);
  }
}

async function foreground(o: UpOptions): Promise<void> {
  const holder: { stack?: Stack } = {};
  const abort = new AbortController();
  const supervisor = (state: 'starting' | 'running' | 'stopping' | 'failed', error?: string) =>
    o.supervised
      ? writeSupervisorState(o.stateDir, { pid: process.pid, state, startedAt, log: supervisorLog(o.stateDir), ...(error ? { error } : {}) }).catch(
          () => undefined,
        )
      : Promise.resolve();
  const startedAt = new Date().toISOString();
  let stopping = false;
  const shutdown = async (sig: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`\n${sig}: stopping the stack...\n`);
    if (!holder.stack) {
      abort.abort(); // still starting: startStack stops after the current step and rejects
      return;
    }
    await supervisor('stopping');
    await holder.stack.stop();
    if (o.supervised) await removeSupervisorState(o.stateDir);
    process.stderr.write('stopped: no process, mount or network namespace left.\n');
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  // A detached supervisor has no terminal: a SIGHUP (e.g. sent to its old process group) must not kill it.
  if (o.supervised) process.on('SIGHUP', () => undefined);
  await supervisor('starting');
  let stack: Stack;
  try {
    stack = await startStack({
      signal: abort.signal,
      stateDir: o.stateDir,
      publicPort: o.port,
      internalPort: o.internalPort,
      idpPort: o.idpPort,
      policyPort: o.policyPort,
      controllerPort: o.controllerPort,
      redisPort: o.redisPort,
      policyReplicas: o.policyReplicas,
      bridgeIndex: o.bridgeIndex,
      examples: o.examples,
      fresh: o.fresh,
    });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    process.stderr.write(`${msg}\n`);
    if (abort.signal.aborted) await removeSupervisorState(o.stateDir);
    else await supervisor('failed', msg);
    process.exit(abort.signal.aborted ? 130 : 1);
  }
  holder.stack = stack;
  if (o.supervised) {
    // The detached `kea up` prints the summary (from stack.json); the log gets one line.
    process.stdout.write(
      `ready: gateway ${stack.gatewayUrl}, docs ${stack.docsUrl} (${stack.warm ? 'warm' : 'cold'} start in ${((stack.totalMs ?? 0) / 1000).toFixed(1)} s)\n`,
    );
  } else {
    process.stdout.write(`${summaryLines(stack, { detached: false }).join('\n')}\n`);
  }
  if (stopping) return;
  await supervisor('running');
  await new Promise<never>(() => undefined); // stay until a signal arrives
}
