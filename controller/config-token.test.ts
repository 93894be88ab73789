/**
 * The controller's internal token settings (docs/adr/0009-internal-routes.md): the current token
 * from a flag, the environment or a file (a mounted Secret key; never needs the command line),
 * and the previous/next values a rotation adds to what the internal routes accept.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from './config.js';

const dir = mkdtempSync(join(tmpdir(), 'kea-config-token-'));
const saved = { ...process.env };
const argv = (...flags: string[]) => ['node', 'kea-controller', ...flags];

beforeEach(() => {
  for (const k of Object.keys(process.env)) if (k.startsWith('KEA_INTERNAL_TOKEN')) delete process.env[k];
});
afterAll(() => {
  process.env = saved;
  rmSync(dir, { recursive: true, force: true });
});

test('the current token from --internal-token-file, surrounding white space dropped', () => {
  const f = join(dir, 'token');
  writeFileSync(f, '  s3cret-from-file\n', { mode: 0o600 });
  const { config } = loadConfig(argv(`--internal-token-file=${f}`));
  expect(config.internalToken).toBe('s3cret-from-file');
  expect(config.acceptedInternalTokens).toBeUndefined();
});

test('the environment works too; the flag wins over the file', () => {
  process.env.KEA_INTERNAL_TOKEN = 'from-env';
  expect(loadConfig(argv()).config.internalToken).toBe('from-env');
  const f = join(dir, 'token2');
  writeFileSync(f, 'from-file');
  expect(loadConfig(argv(`--internal-token-file=${f}`)).config.internalToken).toBe('from-env');
});

test('an empty or missing token file is refused with its path', () => {
  const f = join(dir, 'empty');
  writeFileSync(f, '\n');
  expect(() => loadConfig(argv(`--internal-token-file=${f}`))).toThrow(`--internal-token-file ${f} is empty`);
  expect(() => loadConfig(argv(`--internal-token-file=${join(dir, 'nope')}`))).toThrow(/--internal-token-file .*nope: ENOENT/);
  expect(() => loadConfig(argv())).toThrow(/KEA_INTERNAL_TOKEN_FILE.*is required/);
});

test('previous and next are accepted besides the current one (empty and repeated values dropped)', () => {
  process.env.KEA_INTERNAL_TOKEN_PREVIOUS = 'old';
  process.env.KEA_INTERNAL_TOKEN_NEXT = '';
  expect(loadConfig(argv('--internal-token=cur')).config.acceptedInternalTokens).toEqual(['old']);
  expect(loadConfig(argv('--internal-token=cur', '--internal-token-next=new')).config.acceptedInternalTokens).toEqual(['old', 'new']);
  expect(loadConfig(argv('--internal-token=old')).config.acceptedInternalTokens).toBeUndefined();
});
