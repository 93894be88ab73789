import { parseDockerfile, exampleOfImage } from './localpods.js';

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
