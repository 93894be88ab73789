#!/usr/bin/env node
/**
 * `kea`: KEA's command line.
 *   kea up [--detach]       run the whole stack locally (dev/stack.ts), in the foreground or detached
 *   kea status              what the local stack runs: components, pids, alive?, logs
 *   kea down                stop it (foreground or detached)
 *   kea init                MLService + ApiSchema templates for a framework
 *   kea scan DIR            derive an ApiSchema from Python sources (tree-sitter, never runs them)
 *   kea import URL|FILE     derive an ApiSchema from a served OpenAPI document
 *   kea diff OLD NEW        classified (breaking / non-breaking) API diff
 */
import { Command } from 'commander';
import { register as up } from './commands/up.js';
import { register as down } from './commands/down.js';
import { register as status } from './commands/status.js';
import { register as init } from './commands/init.js';
import { register as scan } from './commands/scan.js';
import { register as importCmd } from './commands/import.js';
import { register as diff } from './commands/diff.js';

const program = new Command('kea').description('KEA: a self-documenting API gateway for ML model serving on Gateway API').version('0.1.0');
for (const register of [up, status, down, init, scan, importCmd, diff]) register(program);
await program.parseAsync(process.argv);
