/**
 * v1 Services: one ClusterIP Service per revision of an accepted MLService, named
 * `<mls>-<revision>` like its Deployment.
 *
 * Takes in: an {@link MLServiceIR} and one of its {@link RevisionIR}s.
 * Gives out: the Service selecting the revision's pods, port `http` (the revision's port) to
 * the container port named `http`. Pure.
 */
import type { V1Service } from '@kubernetes/client-node';
import { LABELS } from '../../lib/api/types.js';
import type { MLServiceIR, RevisionIR } from '../ir/index.js';
import { revisionSelector } from './deployments.js';
import { metadata, mlsOwner } from './metadata.js';

/** The Service of revision `r` of `m`. */
export function service(m: MLServiceIR, r: RevisionIR): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: metadata(r.objectName, m.namespace, mlsOwner(m), { [LABELS.revision]: r.name }),
    spec: {
      type: 'ClusterIP',
      selector: revisionSelector(m, r),
      ports: [{ name: 'http', port: r.port, targetPort: 'http', protocol: 'TCP' }],
    },
  };
}
