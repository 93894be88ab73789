/**
 * Path templates → Gateway API path matches.
 *
 * NGF 1.6.2 implements the HTTPRoute path match types `Exact` and `PathPrefix` only (no
 * `RegularExpression`), so an operation path is matched as follows:
 *   - a static path (no `{param}`) → `Exact` basePath + path;
 *   - a template such as `/items/{id}` → `PathPrefix` of its static prefix, i.e. the segments
 *     before the first segment holding a `{` (`/iris/items`); a template whose first segment
 *     is a parameter matches `PathPrefix` basePath. Gateway API prefixes match whole path
 *     segments, so `/iris/items` matches `/iris/items/42` but not `/iris/itemsX`. The policy
 *     server checks the full template itself (it receives the public path unchanged).
 */

/** A Gateway API HTTPPathMatch (type Exact or PathPrefix). */
export interface PathMatch {
  type: 'Exact' | 'PathPrefix';
  value: string;
}

/** True when the path holds a `{param}` template expression (OpenAPI 3.0 §4.7.9 Paths Object). */
export function isTemplate(path: string): boolean {
  return path.includes('{');
}

/** Public path of an operation: basePath + path (`/iris` + `/predict` → `/iris/predict`). */
export function publicPath(basePath: string, path: string): string {
  return `${basePath}${path}`;
}

/** The Gateway API path match routing an operation (see module comment). */
export function operationPathMatch(basePath: string, path: string): PathMatch {
  if (!isTemplate(path)) return { type: 'Exact', value: publicPath(basePath, path) };
  const segments = path.split('/').slice(1);
  const staticSegments: string[] = [];
  for (const s of segments) {
    if (s.includes('{')) break;
    staticSegments.push(s);
  }
  const prefix = staticSegments.length ? `/${staticSegments.join('/')}` : '';
  return { type: 'PathPrefix', value: `${basePath}${prefix}` };
}

/** Names of the `{param}` expressions of a path template, in order. */
export function templateParams(path: string): string[] {
  return [...path.matchAll(/\{([^}]*)\}/g)].map((m) => m[1]);
}
