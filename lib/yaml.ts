/**
 * YAML for Kubernetes, written through the `yaml` library only, safe to read with go-yaml.
 *
 * Takes in: a JSON-compatible value (one Kubernetes object) and optional header lines, which
 * may carry untrusted text (OpenAPI fields, Python identifiers, file names). Gives out: one
 * YAML document that every reader decodes to exactly that value and nothing else.
 *
 * Why more than `YAML.stringify`: the `yaml` library writes YAML 1.2, where only `\n` and `\r`
 * break lines. Kubernetes reads YAML 1.1 with go-yaml (kubectl, the API server, kustomize),
 * where NEL (U+0085), LINE SEPARATOR (U+2028) and PARAGRAPH SEPARATOR (U+2029) break lines too
 * (YAML 1.1 §4.1.4). `yaml` 2.x writes those three raw in plain scalars and inside double quotes,
 * and leaves U+0085 raw in comments; a hand-written `# ...` comment leaves a lone `\r` raw. In
 * each case go-yaml ends the scalar or the comment there, and the rest of the field becomes YAML
 * of its own: a hostile field can add keys or whole objects (a ClusterRoleBinding) to what
 * `kubectl apply` reads. go-yaml also refuses a file holding U+FEFF, U+FFFE or U+FFFF anywhere
 * but at its start ("control characters are not allowed"). And go-yaml resolves plain scalars
 * by YAML 1.1 rules (`n`, `yes`, `off` are booleans, `1:20` a number, `<<` a merge key), so
 * the document is written with the library's YAML 1.1 schema, which quotes those.
 */
import YAML, { visit } from 'yaml';

/** Characters go-yaml reads differently from YAML 1.2 (line breaks, or refused), with their double-quoted escapes (YAML 1.1 §5.7). */
const GO_YAML_ESCAPES: Readonly<Record<string, string>> = {
  '\u0085': '\\N',
  '\u2028': '\\L',
  '\u2029': '\\P',
  '\ufeff': '\\uFEFF',
  '\ufffe': '\\uFFFE',
  '\uffff': '\\uFFFF',
};
const GO_YAML_SPECIAL = /[\u0085\u2028\u2029\ufeff\ufffe\uffff]/;
const GO_YAML_SPECIAL_G = /[\u0085\u2028\u2029\ufeff\ufffe\uffff]/g;
/**
 * What a comment may not hold raw: C0/C1 controls (every line break among them), DEL, line and
 * paragraph separators, format characters (bidi overrides, zero-width, BOM), noncharacters and
 * lone surrogates.
 */
const COMMENT_UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\ufffe\uffff]/gu;

/**
 * Makes text safe for one YAML comment line: every character in {@link COMMENT_UNSAFE} is
 * written as a `\uXXXX` escape (`\UXXXXXXXX` above U+FFFF; so `\r` reads `\u000d`), so the comment cannot end
 * early for any YAML 1.1 or 1.2 reader nor hide text from a terminal.
 * @param text any string, possibly hostile.
 * @returns one line, without line breaks.
 */
export function commentSafe(text: string): string {
  return text.replace(COMMENT_UNSAFE, (c) => {
    const cp = c.codePointAt(0)!;
    return cp > 0xffff ? `\\U${cp.toString(16).padStart(8, '0')}` : `\\u${cp.toString(16).padStart(4, '0')}`;
  });
}

/**
 * Writes `value` as one YAML document for Kubernetes, optionally headed by `# ` comment lines.
 * Strings holding a character go-yaml reads as a line break (or refuses) are double-quoted
 * with that character escaped; header lines go through {@link commentSafe}.
 * @param value JSON-compatible data (no `undefined` inside arrays, no cycles).
 * @param header comment lines (each may be untrusted); an embedded `\n` starts a new comment line.
 * @returns YAML text ending in a newline.
 * @throws Error if the text does not read back (with the `yaml` library) as `value`: a guard
 *   against a future library change, never expected.
 */
export function toKubeYaml(value: unknown, header: readonly string[] = []): string {
  // YAML 1.1 scalar resolution, as go-yaml does: `n`, `yes`, `on`, `1:20`, `012` are written quoted.
  const doc = new YAML.Document(value, { aliasDuplicateObjects: false, version: '1.1' });
  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value !== 'string') return;
      if (GO_YAML_SPECIAL.test(node.value)) node.type = 'QUOTE_DOUBLE';
      // `<<` is a merge key for go-yaml (a key named so would merge its value's keys into the
      // parent), and the library's 1.1 schema writes the string `<<` bare: tag it `!!str`.
      if (node.value === '<<') Object.assign(node, { type: 'QUOTE_DOUBLE', tag: 'tag:yaml.org,2002:str' });
    },
  });
  const lines = header.flatMap((h) => h.split('\n'));
  if (lines.length) doc.commentBefore = lines.map((l) => (l ? ` ${commentSafe(l)}` : '')).join('\n');
  // The special characters now occur only inside double-quoted scalars (comments were escaped,
  // every other string holding one was quoted), where their escapes mean the same character.
  const text = doc.toString({ lineWidth: 0 }).replace(GO_YAML_SPECIAL_G, (c) => GO_YAML_ESCAPES[c]);
  const back = YAML.parse(text, { version: '1.1' }) as unknown;
  if (JSON.stringify(back) !== JSON.stringify(JSON.parse(JSON.stringify(value ?? null)))) {
    throw new Error('toKubeYaml: the YAML written does not read back as the value given');
  }
  return text;
}
