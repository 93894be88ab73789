/**
 * A model with no server code, end to end through the gateway (issue 14, part 1): the local
 * stack (dev/stack.ts) applies examples/iris-sklearn/kea.yaml (`framework: sklearn`,
 * `modelUri: file:///models/iris-sklearn/v1/model.joblib`, an ApiSchema naming only the
 * model's OIP v2 signature); the controller renders the predefined runtime's Deployment and
 * dev/localpods.ts runs it as a real MLServer + mlserver-sklearn process on the joblib file
 * scripts/setup.sh trained. Through nginx-gateway-fabric + nginx and the policy server:
 *   - the typed OpenAPI document KEA derived (FP64 [-1, 4] input, INT64 output) is served;
 *   - an OIP v2 inference request returns the model's real predictions (200);
 *   - a tensor of the wrong shape gets 400 application/problem+json naming the field, and
 *     MLServer's own access log shows it never received that request;
 *   - examples/iris-sklearn-canary/kea.yaml (v1 80 % / v2 20 %, two model files of the same
 *     runtime) splits traffic between two MLServer pods, told apart by a flower the two models
 *     classify differently.
 */
import { readFile, readdir, rm, cp } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO_ROOT } from '../dev/controlplane.js';
import { ARTIFACTS, bearer, hit, pool, postJson, removeStateDir, serverSideApply, startE2EStack, until, type E2EStack, type Hit } from './support.js';

let S: E2EStack;
const url = (p: string) => `${S.gw}${p}`;
const json = (h: Hit): any => JSON.parse(h.text); // eslint-disable-line @typescript-eslint/no-explicit-any
const INFER = '/iris-sklearn/v2/models/iris-sklearn/infer';

/** Lines of MLServer's access log (the pod's log under the stack's state dir) for infer requests. */
async function runtimeInferCalls(): Promise<number> {
  const dir = join(S.stateDir, 'logs', 'pods');
  const file = (await readdir(dir)).find((f) => f.startsWith('default_iris-sklearn-v1') && f.endsWith('.log'));
  if (!file) throw new Error(`no iris-sklearn pod log in ${dir}`);
  return (await readFile(join(dir, file), 'utf8')).split('\n').filter((l) => l.includes('POST /v2/models/iris-sklearn/infer')).length;
}

beforeAll(async () => {
  S = await startE2EStack();
  const auth = { authorization: `Bearer ${await bearer(S, 'student')}` };
  await until(
    'iris-sklearn model ready through the gateway',
    60000,
    async () => (await hit(url('/iris-sklearn/v2/models/iris-sklearn/ready'), { headers: auth })).status === 200,
    500,
  );
}, 300000);

afterAll(async () => {
  if (!S) return;
  await S.stack.stop();
  await rm(join(ARTIFACTS, 'logs-iris-sklearn'), { recursive: true, force: true });
  await cp(join(S.stateDir, 'logs'), join(ARTIFACTS, 'logs-iris-sklearn'), { recursive: true }).catch(() => undefined);
  await removeStateDir(S.stateDir);
}, 120000);

describe('examples/iris-sklearn: sklearn model file served by MLServer, no server code', () => {
  test('typed docs, real predictions, wrong tensor shape → 400 problem+json before the runtime', async () => {
    const auth = { authorization: `Bearer ${await bearer(S, 'student')}` };

    // The OpenAPI document KEA derived from the declared signature is typed.
    const doc = json(await hit(url('/openapi/default/iris-sklearn.json')));
    const input = doc.paths['/v2/models/iris-sklearn/infer'].post.requestBody.content['application/json'].schema.properties.inputs.items;
    expect(input.properties.name.enum).toEqual(['input-0']);
    expect(input.properties.datatype.enum).toEqual(['FP64']);
    expect(input.properties.data.anyOf[0].items).toMatchObject({ minItems: 4, maxItems: 4, items: { type: 'number', format: 'double' } });

    const rows = [
      [5.1, 3.5, 1.4, 0.2],
      [6.0, 2.9, 4.5, 1.5],
      [6.7, 3.0, 5.2, 2.3],
    ];
    const ok = await postJson(url(INFER), { inputs: [{ name: 'input-0', shape: [3, 4], datatype: 'FP64', data: rows }] }, auth);
    expect(ok.status).toBe(200);
    expect(json(ok)).toMatchObject({ model_name: 'iris-sklearn', outputs: [{ name: 'predict', datatype: 'INT64', shape: [3, 1], data: [0, 1, 2] }] });
    const callsBefore = await runtimeInferCalls();
    expect(callsBefore).toBeGreaterThanOrEqual(1);

    const bad = await postJson(url(INFER), { inputs: [{ name: 'input-0', shape: [1, 3], datatype: 'FP64', data: [[5.1, 3.5, 1.4]] }] }, auth);
    expect(bad.status).toBe(400);
    expect(bad.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const problem = json(bad);
    expect(problem.status).toBe(400);
    expect(problem.errors).toEqual(expect.arrayContaining([expect.objectContaining({ in: 'body', pointer: expect.stringMatching(/^\/inputs\/0/) })]));
    // The runtime never saw it (MLServer answers that request with a 500 traceback).
    await new Promise((r) => setTimeout(r, 500));
    expect(await runtimeInferCalls()).toBe(callsBefore);
  }, 180000);

  test('canary between two model files: v1 80 % / v2 20 %', async () => {
    const auth = { authorization: `Bearer ${await bearer(S, 'student')}` };
    // Logistic regression (v1) says versicolor (1), the random forest (v2) virginica (2).
    const body = { inputs: [{ name: 'input-0', shape: [1, 4], datatype: 'FP64', data: [[6.7, 3.6, 5.1, 1.0]] }] };
    const predict = async (): Promise<number> => {
      const h = await postJson(url(INFER), body, auth);
      if (h.status !== 200) throw new Error(`infer ${h.status}: ${h.text}`);
      return json(h).outputs[0].data[0] as number;
    };
    expect(await predict()).toBe(1);
    await serverSideApply(S, await readFile(join(REPO_ROOT, 'examples', 'iris-sklearn-canary', 'kea.yaml'), 'utf8'));
    // v2 gets its weight once its pod is available (readiness gating): wait for its first answer.
    await until('a v2 answer through the gateway', 90000, async () => (await predict()) === 2, 200);
    const answers = await pool(100, 4, () => predict());
    const v2 = answers.filter((a) => a === 2).length;
    expect(answers.filter((a) => a !== 1 && a !== 2)).toEqual([]);
    // Binomial(100, 0.2): 20 ± 4; the bounds are over 3 standard deviations away.
    expect(v2).toBeGreaterThanOrEqual(8);
    expect(v2).toBeLessThanOrEqual(35);
  }, 180000);
});
