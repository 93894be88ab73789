/**
 * apps/v1 Deployments: one per revision of an accepted MLService, named `<mls>-<revision>`.
 *
 * Takes in: an {@link MLServiceIR} and one of its {@link RevisionIR}s.
 * Gives out: the Deployment (replicas, selector by owner and revision labels, the model
 * container with its port `http`, env, resources and readiness/liveness probes on the IR's
 * paths; a model downloaded by the storage-initializer init container into an emptyDir, or a
 * PVC mounted read-only, ir/runtimes.ts). Pure.
 */
import type { V1Container, V1Deployment, V1Volume } from '@kubernetes/client-node';
import { LABELS } from '../../lib/api/types.js';
import type { MLServiceIR, RevisionIR } from '../ir/index.js';
import { MODEL_MOUNT, PVC_MOUNT, STORAGE_INITIALIZER_IMAGE } from '../ir/runtimes.js';
import { ownerLabelValue } from '../model.js';
import { metadata, mlsOwner } from './metadata.js';

/** The pod selector of a revision: its owner and revision labels (also the Service's selector). */
export function revisionSelector(m: MLServiceIR, r: RevisionIR): Record<string, string> {
  return { [LABELS.owner]: ownerLabelValue('MLService', m.namespace, m.name), [LABELS.revision]: r.name };
}

function probe(path: string, kind: 'readiness' | 'liveness') {
  return {
    httpGet: { path, port: 'http', scheme: 'HTTP' },
    initialDelaySeconds: kind === 'readiness' ? 5 : 30,
    periodSeconds: kind === 'readiness' ? 5 : 10,
    timeoutSeconds: 2,
    successThreshold: 1,
    failureThreshold: kind === 'readiness' ? 3 : 6,
  };
}

/** The Deployment of revision `r` of `m`. */
export function deployment(m: MLServiceIR, r: RevisionIR): V1Deployment {
  const sel = revisionSelector(m, r);
  const volumes: V1Volume[] = [];
  const mounts: Array<{ name: string; mountPath: string; readOnly?: boolean }> = [];
  const initContainers: V1Container[] = [];
  if (r.model?.download) {
    volumes.push({ name: 'kea-model', emptyDir: {} });
    mounts.push({ name: 'kea-model', mountPath: MODEL_MOUNT, readOnly: true });
    initContainers.push({
      name: 'storage-initializer',
      image: STORAGE_INITIALIZER_IMAGE,
      args: [r.model.download.uri, MODEL_MOUNT],
      volumeMounts: [{ name: 'kea-model', mountPath: MODEL_MOUNT }],
    });
  } else if (r.model?.pvcClaim) {
    volumes.push({ name: 'kea-model', persistentVolumeClaim: { claimName: r.model.pvcClaim, readOnly: true } });
    mounts.push({ name: 'kea-model', mountPath: PVC_MOUNT, readOnly: true });
  }
  const container: V1Container = {
    name: 'model',
    image: r.image,
    ...(r.command ? { command: [...r.command] } : {}),
    ...(r.args.length ? { args: [...r.args] } : {}),
    ports: [{ name: 'http', containerPort: r.port, protocol: 'TCP' }],
    ...(r.env.length ? { env: [...r.env] } : {}),
    ...(r.resources ? { resources: r.resources } : {}),
    readinessProbe: probe(r.readinessPath, 'readiness'),
    livenessProbe: probe(r.livenessPath, 'liveness'),
    ...(mounts.length ? { volumeMounts: mounts } : {}),
  };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: metadata(r.objectName, m.namespace, mlsOwner(m), { [LABELS.revision]: r.name }),
    spec: {
      replicas: r.replicas,
      selector: { matchLabels: sel },
      template: {
        metadata: { labels: { ...sel, 'app.kubernetes.io/name': m.name, 'app.kubernetes.io/instance': r.objectName } },
        spec: {
          ...(initContainers.length ? { initContainers } : {}),
          containers: [container],
          ...(volumes.length ? { volumes } : {}),
        },
      },
    },
  };
}
