/**
 * A small raw HTTP client for tests (node:http, so any header can be sent, including
 * hop-by-hop ones and forged identity headers).
 */
import { Agent, request } from 'node:http';

/** A buffered response. */
export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  text: string;
  /** Parsed JSON body, or undefined. */
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

const agent = new Agent({ keepAlive: true, maxSockets: 64 });

/**
 * Sends one request and buffers the answer.
 * @param body - string/Buffer sent as is; objects are JSON-encoded with content-type set.
 */
export function send(
  method: string,
  url: string,
  opts: { headers?: Record<string, string | string[]>; body?: unknown; timeoutMs?: number; agent?: Agent | false; rawPath?: string } = {},
): Promise<RawResponse> {
  const u = new URL(url);
  let payload: Buffer | undefined;
  const headers: Record<string, string | string[]> = { ...(opts.headers ?? {}) };
  if (opts.body !== undefined) {
    if (Buffer.isBuffer(opts.body)) payload = opts.body;
    else if (typeof opts.body === 'string') payload = Buffer.from(opts.body);
    else {
      payload = Buffer.from(JSON.stringify(opts.body));
      if (!Object.keys(headers).some((k) => k.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
    }
    if (!Object.keys(headers).some((k) => k.toLowerCase() === 'content-length' || k.toLowerCase() === 'transfer-encoding')) {
      headers['content-length'] = String(payload.length);
    }
  }
  return new Promise((resolve, reject) => {
    const req = request(
      {
        method,
        hostname: u.hostname,
        port: u.port,
        path: opts.rawPath ?? u.pathname + u.search,
        headers,
        agent: opts.agent === undefined ? agent : opts.agent,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          const text = body.toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text, json });
        });
      },
    );
    req.on('error', reject);
    if (opts.timeoutMs) req.setTimeout(opts.timeoutMs, () => req.destroy(new Error('client timeout')));
    if (payload) req.write(payload);
    req.end();
  });
}
