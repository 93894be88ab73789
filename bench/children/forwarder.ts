/**
 * The reference forwarder of the bench (bench/policy.ts): the least a Node.js reverse proxy in
 * the policy server's position does, with the same runtime, flags and HTTP stack as the policy
 * server (node:http server, undici Pool with the same options, raw dispatch handler, hop-by-hop
 * headers dropped) and no policy at all: no authentication, validation, audit, metrics, request
 * id or deadlines. In `parse` mode it also runs `JSON.parse` on the body (what validation costs
 * at the least; a body that is not JSON gets 400). Its throughput is the ceiling of any Node.js
 * policy server on this machine; the bench reports KEA against it.
 *
 * Run: `node dist/bench/children/forwarder.js <port> <upstream base URL> forward|parse`; listens
 * on 127.0.0.1, forwards every request to `<upstream>/predict`. Runs until killed.
 */
import http from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import { Pool, type Dispatcher } from 'undici';

const [port, upstream, mode] = process.argv.slice(2);
const parse = mode === 'parse';
const pool = new Pool(upstream, { connections: 128, pipelining: 1, keepAliveTimeout: 30000, keepAliveMaxTimeout: 300000 });
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'host', 'content-length', 'date', 'upgrade', 'te', 'trailer', 'proxy-connection']);

/** Streams the upstream's response to the client (hop-by-hop headers dropped); 502 when it fails before the headers. */
class Handler implements Dispatcher.DispatchHandler {
  constructor(private readonly res: http.ServerResponse) {}
  onRequestStart(): void {}
  onResponseStart(_c: Dispatcher.DispatchController, status: number, headers: IncomingHttpHeaders): void {
    const out: Array<string | string[]> = [];
    for (const k in headers) {
      const v = headers[k];
      if (v !== undefined && !HOP.has(k)) out.push(k, v);
    }
    this.res.writeHead(status, out);
  }
  onResponseData(_c: Dispatcher.DispatchController, chunk: Buffer): void {
    this.res.write(chunk);
  }
  onResponseEnd(): void {
    this.res.end();
  }
  onResponseError(): void {
    if (!this.res.headersSent) this.res.writeHead(502);
    this.res.end();
  }
}

const server = http.createServer((req, res) => {
  let first: Buffer | undefined;
  let chunks: Buffer[] | undefined;
  req.on('data', (c: Buffer) => {
    if (first === undefined) first = c;
    else (chunks ??= [first]).push(c);
  });
  req.on('end', () => {
    const body = chunks ? Buffer.concat(chunks) : (first ?? null);
    if (parse && body) {
      try {
        JSON.parse(body.toString('utf8'));
      } catch {
        res.writeHead(400);
        res.end();
        return;
      }
    }
    const h: string[] = [];
    for (const k in req.headers) if (!HOP.has(k)) h.push(k, req.headers[k] as string);
    h.push('host', 'upstream.internal');
    pool.dispatch({ path: '/predict', method: req.method as Dispatcher.HttpMethod, headers: h, body, headersTimeout: 0, bodyTimeout: 0 }, new Handler(res));
  });
});
server.keepAliveTimeout = 60000;
server.listen(Number(port), '127.0.0.1');
