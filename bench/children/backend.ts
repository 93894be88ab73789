/**
 * The bench's trivial backend (bench/policy.ts): a node:http server answering every request,
 * after reading its body, with the same ~60 bytes of JSON (status 200, `x-kea-revision: v1`).
 *
 * Run: `node dist/bench/children/backend.js <port> [host]` (host default 127.0.0.1). Runs until
 * killed.
 */
import http from 'node:http';

const [port, host = '127.0.0.1'] = process.argv.slice(2);
const body = JSON.stringify({ class: 'setosa', probability: 0.97, revision: 'v1', ok: true });
const server = http.createServer((req, res) => {
  req.on('data', () => {});
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-kea-revision': 'v1' });
    res.end(body);
  });
});
server.keepAliveTimeout = 60000;
server.listen(Number(port), host);
