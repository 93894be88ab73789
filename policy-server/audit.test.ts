/**
 * The audit log's bounds (issue 10 #11): one record, one JSON line and one service's /logs
 * ring stay bounded whatever the requests, and the ring keeps the newest records first.
 */
import { Writable } from 'node:stream';
import { createLogger, flushLogs } from '../lib/log.js';
import { AuditLog, auditRecordBytes, MAX_AUDIT_FIELD_CHARS, MAX_AUDIT_PATH_CHARS, MAX_AUDIT_VALIDATION, type AuditRecord } from './audit.js';
import type { FieldError } from './datapath/problem.js';

function sink(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(l);
      cb();
    },
  });
  return { lines, stream };
}

const record = (i: number, extra: Partial<AuditRecord> = {}): AuditRecord => ({
  requestId: `r-${i}`,
  user: 'sam',
  operation: 'ml/iris/predict',
  service: 'ml/iris',
  method: 'POST',
  path: '/iris/predict',
  status: 400,
  latencyMs: 1.5,
  outcome: 'invalid_request',
  ...extra,
});

describe('AuditLog bounds', () => {
  test('a record with 5,000 long failures and a long path is clipped, with the count kept', () => {
    const { lines, stream } = sink();
    const audit = new AuditLog({ logger: createLogger('policy-server', { level: 'info', stream }) });
    const validation: FieldError[] = Array.from({ length: 5000 }, (_, k) => ({ in: 'body', pointer: `/${'k'.repeat(1000)}${k}`, message: 'm'.repeat(1000) }));
    audit.end(record(1, { validation, path: `/iris/${'p'.repeat(100_000)}`, user: 'u'.repeat(10_000), error: 'e'.repeat(10_000) }));
    flushLogs();
    const kept = audit.recent('ml/iris', 1)[0];
    expect(kept.validation).toHaveLength(MAX_AUDIT_VALIDATION);
    expect(kept.validationCount).toBe(5000);
    expect(kept.validation![0].pointer).toHaveLength(MAX_AUDIT_FIELD_CHARS);
    expect(kept.validation![0].pointer.endsWith('…')).toBe(true);
    expect(kept.path).toHaveLength(MAX_AUDIT_PATH_CHARS);
    expect(kept.user).toHaveLength(MAX_AUDIT_FIELD_CHARS);
    expect(kept.error).toHaveLength(MAX_AUDIT_FIELD_CHARS);
    expect(lines).toHaveLength(1);
    expect(Buffer.byteLength(lines[0])).toBeLessThan(16 * 1024);
    expect(JSON.stringify(kept).length).toBeLessThanOrEqual(auditRecordBytes(kept));
  });

  test('the ring stays under its byte bound after many large records, newest first', () => {
    const { stream } = sink();
    const ringBytes = 64 * 1024;
    const audit = new AuditLog({ logger: createLogger('policy-server', { level: 'info', stream }), ringBytes, ringSize: 200 });
    const validation: FieldError[] = Array.from({ length: 50 }, (_, k) => ({ in: 'body', pointer: `/${'k'.repeat(300)}${k}`, message: 'must be string' }));
    for (let i = 0; i < 2000; i++) {
      audit.end(record(i, { validation, path: `/iris/${'p'.repeat(3000)}` }));
      expect(audit.ringBytesOf('ml/iris')).toBeLessThanOrEqual(ringBytes);
    }
    const kept = audit.recent('ml/iris', 1000);
    expect(kept.length).toBeGreaterThan(5);
    expect(kept.length).toBeLessThan(200); // the byte bound, not the count, limits this ring
    expect(JSON.stringify(kept).length).toBeLessThanOrEqual(ringBytes);
    expect(kept[0].requestId).toBe('r-1999');
    expect(kept[1].requestId).toBe('r-1998');
  });

  test('small records: the count bound (ringSize) applies and /logs pages newest first', () => {
    const { stream } = sink();
    const audit = new AuditLog({ logger: createLogger('policy-server', { level: 'info', stream }), ringSize: 50 });
    for (let i = 0; i < 120; i++) audit.end(record(i, { status: 200, outcome: 'forwarded' }));
    const kept = audit.recent('ml/iris', 1000);
    expect(kept.map((r) => r.requestId)).toEqual(Array.from({ length: 50 }, (_, k) => `r-${119 - k}`));
    expect(audit.recent('ml/iris', 3).map((r) => r.requestId)).toEqual(['r-119', 'r-118', 'r-117']);
    expect(audit.recent('other/service')).toEqual([]);
  });
});
