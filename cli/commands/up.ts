/**
 * `kea up`: runs the whole KEA stack on this machine (dev/stack.ts) and stays in the foreground.
 * Ctrl-C (SIGINT) or SIGTERM (what `kea down` sends) stops everything it started.
 */
import type { Command } from 'commander';
import { startStack, DEFAULT_STATE_DIR, type Stack } from '../../dev/stack.js';

function port(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`invalid port "${v}"`);
  return n;
}

/** Registers `kea up` on the program. */
export function register(program: Command): void {
  program
    .command('up')
    .description('start the local stack: control plane, gateway (Traefik), dev IdP, policy server, controller and the examples')
    .option('--state-dir <dir>', 'state, logs and pid file', DEFAULT_STATE_DIR)
    .option('--port <n>', 'gateway public listener port', port, 8080)
    .option('--internal-port <n>', 'gateway internal listener port', port, 8081)
    .option('--idp-port <n>', 'dev OpenID provider port', port, 9000)
    .option('--policy-port <n>', 'policy server port (on the bridge address 10.213.0.1)', port, 8000)
    .option('--controller-port <n>', 'controller health/metrics port', port, 8082)
    .option('--no-examples', 'do not apply examples/*/kea.yaml')
    .option('--fresh', 'wipe the local control plane data first (cold start)')
    .action(async (o: { stateDir: string; port: number; internalPort: number; idpPort: number; policyPort: number; controllerPort: number; examples: boolean; fresh?: boolean }) => {
      const holder: { stack?: Stack } = {};
      const abort = new AbortController();
      let stopping = false;
      const shutdown = async (sig: string) => {
        if (stopping) return;
        stopping = true;
        process.stderr.write(`\n${sig}: stopping the stack...\n`);
        if (!holder.stack) {
          abort.abort(); // still starting: startStack stops after the current step and rejects
          return;
        }
        await holder.stack.stop();
        process.stderr.write('stopped: no process, mount or network namespace left.\n');
        process.exit(0);
      };
      process.on('SIGINT', () => void shutdown('SIGINT'));
      process.on('SIGTERM', () => void shutdown('SIGTERM'));
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
          examples: o.examples,
          fresh: o.fresh,
        });
      } catch (e) {
        process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
        process.exit(abort.signal.aborted ? 130 : 1);
      }
      holder.stack = stack;
      const lines = [
        '',
        `KEA is up (${stack.warm ? 'warm' : 'cold'} start in ${((stack.totalMs ?? 0) / 1000).toFixed(1)} s)`,
        `  gateway:     ${stack.gatewayUrl}`,
        `  docs:        ${stack.docsUrl}`,
        ...(stack.idpIssuer ? [`  OIDC issuer: ${stack.idpIssuer}`] : []),
        `  demo logins: ${stack.demoLogins.join(', ')}`,
        `  kubectl:     export KUBECONFIG=${stack.kubeconfig}`,
        `  logs:        ${stack.stateDir}/logs`,
        ...(stack.upgrades?.length ? [`  upgrade demo: ${stack.upgrades.map((f) => `kubectl apply --server-side -f ${f}`).join('; ')}`] : []),
        '  steps:',
        ...stack.steps.map((s) => `    ${s.status.padEnd(7)} ${s.step.padEnd(14)} ${String(s.ms).padStart(6)} ms${s.detail && s.status !== 'ok' ? `  (${s.detail})` : ''}`),
        '',
        'Ctrl-C or `kea down` stops everything.',
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
      if (stopping) return;
      await new Promise<never>(() => undefined); // stay in the foreground until a signal arrives
    });
}
