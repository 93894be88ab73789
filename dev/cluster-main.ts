#!/usr/bin/env node
/**
 * `npm run cluster` (scripts/cluster.sh → this file): the one-node cluster of dev/cluster.ts.
 *   cluster-main up [--fresh] [--no-kea] [--overlay dev|prod] [--state-dir DIR]   start it, build the images,
 *                                                  install NGF 1.6.2, KEA's dev (or prod) overlay and two examples
 *                                                  (only the node with --no-kea), print the timings, return
 *   cluster-main down [--state-dir DIR]           stop it and restore the host
 *   cluster-main status [--state-dir DIR]         the recorded components, alive or not, and the node
 * Exit status: 0 done, 1 failed.
 */
import { Command, Option } from 'commander';
import { startCluster, stopCluster, readClusterInfo, daemonAlive, clusterHealthy, COMPONENTS, DEFAULT_CLUSTER_DIR, type ClusterInfo } from './cluster.js';
import { buildImages, installKea, applyExample, type KeaInstall } from './cluster-kea.js';

/** What `up` prints once the node is Ready (and KEA installed, unless `--no-kea`). */
export function summary(info: ClusterInfo, kea?: KeaInstall, overlay = 'dev'): string[] {
  return [
    '',
    `one-node cluster ready (${info.warm ? 'warm' : 'cold'} start in ${(info.totalMs / 1000).toFixed(1)} s)`,
    `  kubectl:  export KUBECONFIG=${info.kubeconfig}`,
    `  API:      ${info.server}   node: ${info.nodeName} (${info.nodeIp})   DNS: ${info.dnsIp}`,
    `  logs:     ${info.stateDir}/logs`,
    '  steps:',
    ...info.steps.map((s) => `    ${s.step.padEnd(18)} ${String(s.ms).padStart(6)} ms`),
    ...(kea
      ? [
          `  KEA (${overlay} overlay, NGF 1.6.2): gateway ${kea.gatewayUrl}   docs ${kea.gatewayUrl}/docs   OIDC issuer ${kea.idpIssuer}`,
          ...kea.steps.map((s) => `    ${s.step.padEnd(18)} ${String(s.ms).padStart(6)} ms`),
        ]
      : []),
    '',
    'npm run cluster -- down   stops it and restores the host.',
  ];
}

const program = new Command('cluster').description('a real one-node Kubernetes cluster on this machine (dev/cluster.ts)');
program
  .command('up')
  .option('--state-dir <dir>', 'state, certificates, etcd data, image store, logs', DEFAULT_CLUSTER_DIR)
  .option('--fresh', 'wipe etcd, kubelet and containerd state first (cold start)')
  .option('--no-kea', 'only the node and cluster DNS: no images built, no NGF, no KEA')
  .addOption(new Option('--overlay <name>', "KEA's overlay (dev/cluster/kea-<name>-ngf1)").choices(['dev', 'prod']).default('dev'))
  .action(async (o: { stateDir: string; fresh?: boolean; kea: boolean; overlay: 'dev' | 'prod' }) => {
    try {
      const log = (l: string) => process.stderr.write(`${l}\n`);
      // Built before the start: a cold build takes minutes, the node should not wait idle meanwhile.
      if (o.kea) await buildImages(['kea', 'ngf', 'examples', ...(o.overlay === 'prod' ? ['redis'] : [])], log);
      // With KEA, a cluster already running is kept: KEA is installed on it.
      const running = await readClusterInfo(o.stateDir);
      const info =
        o.kea && !o.fresh && (await clusterHealthy(running)) ? running! : await startCluster({ stateDir: o.stateDir, fresh: o.fresh, importAll: !o.kea });
      let kea: KeaInstall | undefined;
      if (o.kea) {
        kea = await installKea(o.stateDir, (l) => log(`[kea] ${l}`), { overlay: o.overlay });
        for (const e of ['iris-v1', 'wine']) await applyExample(o.stateDir, e);
      }
      process.stdout.write(`${summary(info, kea, o.overlay).join('\n')}\n`);
    } catch (e) {
      process.stderr.write(`cluster up: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    }
  });
program
  .command('down')
  .option('--state-dir <dir>', 'state dir of `up`', DEFAULT_CLUSTER_DIR)
  .action(async (o: { stateDir: string }) => {
    const found = await stopCluster(o.stateDir);
    process.stdout.write(found ? 'cluster stopped, host restored.\n' : `no cluster recorded in ${o.stateDir} (nothing to stop)\n`);
  });
program
  .command('status')
  .option('--state-dir <dir>', 'state dir of `up`', DEFAULT_CLUSTER_DIR)
  .action(async (o: { stateDir: string }) => {
    const info = await readClusterInfo(o.stateDir);
    if (!info) {
      process.stdout.write(`no cluster recorded in ${o.stateDir}\n`);
      return;
    }
    for (const c of COMPONENTS) {
      const d = info.daemons[c];
      process.stdout.write(`${c.padEnd(24)} ${d ? `pid ${String(d.pid).padEnd(8)} ${(await daemonAlive(d)) ? 'alive' : 'GONE '}  ${d.log}` : 'not started'}\n`);
    }
    process.stdout.write(`node ${info.nodeName}: ${(await clusterHealthy(info)) ? 'Ready' : 'not ready'}\n`);
  });
await program.parseAsync(process.argv);
