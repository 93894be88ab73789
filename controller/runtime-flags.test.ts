/**
 * The controller's Node.js flags keep what the controller needs at run time: WebAssembly (undici's
 * HTTP parser, used by every fetch of OpenAPI discovery) — `--lite-mode`/`--jitless` remove it.
 * The flags are also spelled out in Dockerfile.controller and the `controller` npm script: all
 * three must agree.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { CONTROLLER_NODE_ARGS } from './runtime-flags.js';

const NODE = new URL('../node_modules/.bin/node', import.meta.url).pathname;
const ROOT = new URL('..', import.meta.url).pathname;

test('a process started with CONTROLLER_NODE_ARGS has WebAssembly and a working undici parser', () => {
  const out = execFileSync(
    NODE,
    [
      ...CONTROLLER_NODE_ARGS,
      '--input-type=module',
      '-e',
      `
    import { createServer } from 'node:http';
    const s = createServer((q, r) => r.end('ok')).listen(0, '127.0.0.1', async () => {
      const r = await fetch('http://127.0.0.1:' + s.address().port + '/');
      console.log(typeof WebAssembly, r.status, await r.text());
      s.close();
    });`,
    ],
    { encoding: 'utf8' },
  );
  expect(out.trim()).toBe('object 200 ok');
});

test('Dockerfile.controller and the controller npm script use the same flags', () => {
  const docker = readFileSync(`${ROOT}/Dockerfile.controller`, 'utf8');
  const pkg = JSON.parse(readFileSync(`${ROOT}/package.json`, 'utf8')) as { scripts: Record<string, string> };
  for (const f of CONTROLLER_NODE_ARGS) {
    expect(docker).toContain(`"${f}"`);
    expect(pkg.scripts.controller).toContain(` ${f} `);
  }
});
