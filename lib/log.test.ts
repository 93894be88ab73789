/** Unit test of the shared logger: record shape, batching, and the writeRecord fast path. */
import { PassThrough } from 'node:stream';
import { createLogger, flushLogs, isLevelEnabled, writeRecord } from './log.js';

function capture() {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  return {
    out,
    lines: () =>
      text
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

test('writeRecord emits the record logger.log would, in order with other records', async () => {
  const c = capture();
  const logger = createLogger('unit', { level: 'info', stream: c.out });
  logger.defaultMeta = { ...logger.defaultMeta, worker: 2 };
  logger.info('first', { requestId: 'a', status: 200 });
  writeRecord(logger, 'info', 'second', { requestId: 'b', status: 201, nested: { x: [1] } });
  logger.warn('third');
  flushLogs();
  await new Promise((r) => setImmediate(r));
  const [a, b, c3] = c.lines();
  expect(Object.keys(a).sort()).toEqual(['component', 'level', 'message', 'requestId', 'status', 'time', 'worker']);
  expect(b).toEqual({
    component: 'unit',
    worker: 2,
    requestId: 'b',
    status: 201,
    nested: { x: [1] },
    level: 'info',
    message: 'second',
    time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
  });
  expect([a.message, b.message, c3.message]).toEqual(['first', 'second', 'third']);
});

test('writeRecord falls back to winston for a logger with other transports', async () => {
  const c = capture();
  const logger = createLogger('unit', { level: 'info', stream: c.out });
  const seen: unknown[] = [];
  logger.on('data', (info) => seen.push(info));
  logger.add(new (await import('winston')).default.transports.Stream({ stream: new PassThrough() }));
  writeRecord(logger, 'info', 'via winston', { k: 1 });
  flushLogs();
  await new Promise((r) => setImmediate(r));
  expect(c.lines().map((l) => l.message)).toEqual(['via winston']);
  expect(seen).toHaveLength(1);
});

test('isLevelEnabled answers like winston: every configured level, a runtime change, silent, a transport with its own level', async () => {
  const levels = ['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly', 'nonsense'];
  const c = capture();
  for (const configured of ['error', 'warn', 'info', 'debug', 'silly']) {
    const logger = createLogger('unit', { level: configured, stream: c.out });
    for (const l of levels) expect([configured, l, isLevelEnabled(logger, l)]).toEqual([configured, l, logger.isLevelEnabled(l)]);
    logger.level = 'warn'; // a level changed at run time is honoured at once
    for (const l of levels) expect(['warn', l, isLevelEnabled(logger, l)]).toEqual(['warn', l, logger.isLevelEnabled(l)]);
  }
  expect(isLevelEnabled(createLogger('unit', { level: 'silent', stream: c.out }), 'error')).toBe(false);
  const withOwnLevel = createLogger('unit', { level: 'debug', stream: c.out });
  withOwnLevel.transports[0].level = 'warn';
  expect(isLevelEnabled(withOwnLevel, 'info')).toBe(false);
  expect(isLevelEnabled(withOwnLevel, 'warn')).toBe(true);
  const two = createLogger('unit', { level: 'info', stream: c.out });
  two.add(new (await import('winston')).default.transports.Stream({ stream: new PassThrough(), level: 'debug' }));
  expect(isLevelEnabled(two, 'debug')).toBe(two.isLevelEnabled('debug'));
  expect(isLevelEnabled(two, 'debug')).toBe(true);
});
