import { parseDockerfile, exampleOfImage, localRuntimeOf, mlserverSettings } from './localpods.js';
import { RUNTIMES, modelLocation } from '../controller/ir/runtimes.js';

describe('parseDockerfile', () => {
  test('reads JSON-form CMD/ENTRYPOINT and ENV lines (both forms, quoted values)', () => {
    const df = parseDockerfile(
      [
        'FROM python:3.11-slim',
        'ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 KEA_MODEL="model:DiabetesModel"',
        'ENV LEGACY some value',
        'ENTRYPOINT ["python", "-m"]',
        'CMD ["uvicorn", "app:app", \\',
        '     "--host", "0.0.0.0", "--port", "8080"]',
      ].join('\n'),
    );
    expect(df.entrypoint).toEqual(['python', '-m']);
    expect(df.cmd).toEqual(['uvicorn', 'app:app', '--host', '0.0.0.0', '--port', '8080']);
    expect(df.env).toEqual({ PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1', KEA_MODEL: 'model:DiabetesModel', LEGACY: 'some value' });
  });

  test('shell-form CMD runs under sh -c', () => {
    expect(parseDockerfile('CMD uvicorn app:app --port 80').cmd).toEqual(['sh', '-c', 'uvicorn app:app --port 80']);
  });
});

describe('exampleOfImage', () => {
  test.each([
    ['ghcr.io/kea-dev/iris-v1:v1', 'iris-v1'],
    ['iris-v1', 'iris-v1'],
    ['registry:5000/a/b/wine@sha256:abcd', 'wine'],
    [undefined, undefined],
    ['Bad_Name:1', undefined],
  ])('%s → %s', (image, dir) => {
    expect(exampleOfImage(image)).toBe(dir);
  });
});

describe('localRuntimeOf: the predefined sklearn runtime runs locally as MLServer', () => {
  // The container exactly as controller/ir renders it for `framework: sklearn` + a file:// model.
  const rendered = {
    image: RUNTIMES.sklearn.image,
    args: RUNTIMES.sklearn.args({ model: 'iris-sklearn', dir: modelLocation('file:///models/iris-sklearn/v1/model.joblib').dir, port: 8080 }),
  };

  test('reads the model name and path from the rendered kserve/sklearnserver arguments', () => {
    expect(localRuntimeOf(rendered)).toEqual({ framework: 'sklearn', model: 'iris-sklearn', modelPath: '/models/iris-sklearn/v1/model.joblib' });
  });

  test.each([
    ['docker.io/kserve/sklearnserver:v0.15.0', true],
    ['kserve/sklearnserver@sha256:abcd', true],
    ['registry:5000/kserve/sklearnserver', true],
    ['kserve/sklearnserver-gpu:v1', false],
    ['ghcr.io/kea-dev/examples-iris:v1', false],
    ['pytorch/torchserve-kfs:0.9.0', false],
  ])('image %s → runs locally: %s', (image, local) => {
    expect(localRuntimeOf({ image, args: ['--model_name', 'm', '--model_dir', '/x'] }) !== undefined).toBe(local);
  });

  test('space-separated flags and defaults', () => {
    expect(localRuntimeOf({ image: 'kserve/sklearnserver', args: ['--model_name', 'm', '--model_dir', '/x'] })).toMatchObject({ model: 'm', modelPath: '/x' });
    expect(localRuntimeOf({ image: 'kserve/sklearnserver' })).toMatchObject({ model: 'model', modelPath: '/mnt/models' });
    // The model name becomes a folder of the pod's MLServer settings: only plain names run.
    expect(localRuntimeOf({ image: 'kserve/sklearnserver', args: ['--model_name=../../etc', '--model_dir=/x'] })).toBeUndefined();
  });

  test('MLServer settings: HTTP on the container port, gRPC elsewhere, metrics off, sklearn runtime on the model file', () => {
    const rt = localRuntimeOf(rendered)!;
    const { settings, modelSettings } = mlserverSettings(rt, 8080, '/cache/models/iris-sklearn/v1/model.joblib');
    expect(settings).toEqual({ host: '0.0.0.0', http_port: 8080, grpc_port: 9500, metrics_endpoint: null, parallel_workers: 0, load_models_at_startup: true });
    expect(modelSettings).toEqual({
      name: 'iris-sklearn',
      implementation: 'mlserver_sklearn.SKLearnModel',
      parameters: { uri: '/cache/models/iris-sklearn/v1/model.joblib' },
    });
    expect(mlserverSettings(rt, 9500, '/m').settings.grpc_port).toBe(9501);
  });
});
