/**
 * The docs portal served by the policy server from the live snapshot (SnapshotDocsStore):
 * a configuration change is visible in /docs and /openapi without a restart, and the portal
 * routes never shadow the data path.
 */
import { createPortalRouter } from './portal/index.js';
import { SnapshotDocsStore } from './docs-store.js';
import { irisService, schoolService } from './testing/fixtures.js';
import { send } from './testing/http.js';
import { startStack, type Stack } from './testing/stack.js';

let s: Stack;
beforeAll(async () => {
  s = await startStack({ services: [irisService()], routers: (store) => [createPortalRouter(new SnapshotDocsStore(store), { gatewayUrl: 'http://gw.test' })] });
});
afterAll(async () => {
  await s.close();
});

test('published documents follow the snapshot', async () => {
  const doc = await send('GET', `${s.url}/openapi/ml/iris.json`);
  expect(doc.status).toBe(200);
  expect(doc.json.info).toEqual({ title: 'Iris classifier', version: '2.1.0' });
  expect((await send('GET', `${s.url}/openapi/school/grades.json`)).status).toBe(404);
  s.configure(irisService(), schoolService());
  const grades = await send('GET', `${s.url}/openapi/school/grades.json`);
  expect(grades.status).toBe(200);
  expect(grades.json.info.title).toBe('Grades');
  const catalog = await send('GET', `${s.url}/docs`);
  expect(catalog.status).toBe(200);
  expect(catalog.text).toContain('Grades');
  // The data path is untouched by the portal.
  expect((await send('GET', `${s.url}/iris/health`)).status).toBe(200);
});
