/**
 * `kea down`: stops the stack `kea up` started (from `<state-dir>/stack.json`) and removes
 * whatever a crashed `kea up` left behind (processes, network namespaces, the bridge).
 */
import type { Command } from 'commander';
import { stopStack, DEFAULT_STATE_DIR } from '../../dev/stack.js';

/** Registers `kea down` on the program. */
export function register(program: Command): void {
  program
    .command('down')
    .description('stop the local stack started by `kea up`')
    .option('--state-dir <dir>', 'state dir of `kea up`', DEFAULT_STATE_DIR)
    .action(async (o: { stateDir: string }) => {
      const found = await stopStack(o.stateDir);
      process.stdout.write(found ? 'KEA stack stopped.\n' : `no stack recorded in ${o.stateDir} (nothing to stop)\n`);
    });
}
