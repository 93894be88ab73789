/**
 * lib/yaml.ts: YAML for Kubernetes that go-yaml reads as the `yaml` library does. Pure checks
 * of the text written; the decoding by Kubernetes itself (kubectl + kube-apiserver) is tested in
 * lib/import/hostile.int.test.ts.
 */
import { describe, expect, test } from '@jest/globals';
import YAML from 'yaml';
import { commentSafe, toKubeYaml } from './yaml.js';

/** Characters go-yaml treats as line breaks (YAML 1.1 §4.1.4) or refuses inside a document. */
const GO_YAML_BREAKS = /[\r\u0085\u2028\u2029\ufeff]/;

describe('toKubeYaml', () => {
  test.each([
    ['CR', 'a\rkind: ClusterRoleBinding'],
    ['NEL', 'a\u0085kind: ClusterRoleBinding'],
    ['LS', 'a\u2028kind: ClusterRoleBinding'],
    ['PS', 'a\u2029kind: ClusterRoleBinding'],
    ['BOM', 'a\ufeffb'],
    ['CRLF and LF', 'a\r\nb\nc'],
  ])('a string holding %s is written with escapes only and reads back unchanged', (_n, s) => {
    const value = { kind: 'ApiSchema', [`key ${s}`]: { description: s, list: [s] } };
    const text = toKubeYaml(value, [`header ${s}`]);
    // No raw go-yaml line break anywhere: only `\n` separates lines.
    expect(text).not.toMatch(GO_YAML_BREAKS);
    expect(YAML.parse(text)).toEqual(value);
    expect(YAML.parse(text, { version: '1.1' })).toEqual(value);
  });

  test('YAML 1.1 plain scalars that go-yaml would not read as strings are quoted', () => {
    const value = { metadata: { namespace: 'n', name: 'yes' }, on: 'off', t: '1:20', o: '012', '<<': { a: 'y' } };
    const text = toKubeYaml(value);
    for (const s of ['"n"', '"yes"', '"on"', '"off"', '"1:20"', '"012"', '!!str "<<"', '"y"']) expect(text).toContain(s);
    expect(YAML.parse(text, { version: '1.1', merge: true })).toEqual(value);
  });

  test('header lines become one escaped comment line each; the object is untouched', () => {
    const text = toKubeYaml({ a: 1 }, ['first', 'evil\rkind: X', 'multi\nline']);
    expect(text).toBe('# first\n# evil\\u000dkind: X\n# multi\n# line\n\na: 1\n');
  });
});

describe('commentSafe', () => {
  test('escapes controls, separators, format characters; keeps printable text', () => {
    expect(commentSafe('GET /a\r\n\t\u0085\u2028\u2029\u202e\ufeff\u{e0001} ok é 漢')).toBe(
      'GET /a\\u000d\\u000a\\u0009\\u0085\\u2028\\u2029\\u202e\\ufeff\\U000e0001 ok é 漢',
    );
  });
});
