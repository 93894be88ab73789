/**
 * `kea down`: stops the stack `kea up` started, in the foreground or detached (from
 * `<state-dir>/stack.json` and `<state-dir>/supervisor.json`), and removes whatever a crashed
 * `kea up` left behind (processes, mounts, network namespaces, the bridge).
 */
import type { Command } from 'commander';
import { stopStack, DEFAULT_STATE_DIR } from '../../dev/stack.js';
import { alive, readSupervisorState, removeSupervisorState } from '../detach.js';

/**
 * Stops the stack of `stateDir`: the recorded stack (dev/stack.ts stopStack: SIGTERM to its
 * owner, which is the detached supervisor for `kea up --detach`, then leftovers), and a
 * supervisor still starting before it recorded a stack.
 * @returns false when nothing was recorded.
 */
export async function down(stateDir: string, log: (l: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<boolean> {
  const sup = await readSupervisorState(stateDir);
  let found = await stopStack(stateDir, log);
  if (sup) {
    found = true;
    if (alive(sup.pid)) {
      log(`stopping the detached kea up (pid ${sup.pid})`);
      process.kill(sup.pid, 'SIGTERM');
      const deadline = Date.now() + 60000;
      while (Date.now() < deadline && alive(sup.pid)) await new Promise((r) => setTimeout(r, 200));
      if (alive(sup.pid)) process.kill(sup.pid, 'SIGKILL');
      await stopStack(stateDir, log); // what it recorded meanwhile, if anything
    }
    await removeSupervisorState(stateDir);
  }
  return found;
}

/** Registers `kea down` on the program. */
export function register(program: Command): void {
  program
    .command('down')
    .description('stop the local stack started by `kea up` (foreground or --detach)')
    .option('--state-dir <dir>', 'state dir of `kea up`', DEFAULT_STATE_DIR)
    .action(async (o: { stateDir: string }) => {
      const found = await down(o.stateDir);
      process.stdout.write(found ? 'KEA stack stopped.\n' : `no stack recorded in ${o.stateDir} (nothing to stop)\n`);
    });
}
