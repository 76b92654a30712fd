import YAML from 'yaml';
import { isStackVersion } from '../tags.js';

/**
 * The Kubernetes objects that run one distribution: a Deployment, a Service
 * and, optionally, a HorizontalPodAutoscaler. Pure functions: the same input
 * gives the same objects, so they can be unit-tested and diffed.
 *
 * The names are the ones the package-storage rollout command has always used
 * (`kubectl rollout restart deployment package-registry-<d>-vanilla -n
 * package-registry`); changing them breaks every release runbook.
 */

export const NAMESPACE = 'package-registry';
/** The container name `kubectl set image` addresses. */
export const CONTAINER = 'registry';
/** The image listens here (`EPR_ADDRESS=0.0.0.0:8080` in Dockerfile.base) as uid/gid 1000. */
export const CONTAINER_PORT = 8080;
export const RUN_AS = 1000;
export const HEALTH_PATH = '/health';

export function deploymentName(distribution: string): string {
  return `package-registry-${distribution}-vanilla`;
}

/** Labels on every object; `app` is what ready.sh and dashboards select on. */
export function labels(distribution: string): Record<string, string> {
  return {
    app: 'package-registry',
    'app.kubernetes.io/name': 'package-registry',
    'app.kubernetes.io/instance': deploymentName(distribution),
    'app.kubernetes.io/component': 'registry',
    'app.kubernetes.io/part-of': 'package-storage',
    'app.kubernetes.io/managed-by': 'package-registry-builder',
    'package-registry/distribution': distribution,
  };
}

/** The selector is immutable once a Deployment exists: keep it to the two labels that never change. */
export function selector(distribution: string): Record<string, string> {
  return { app: 'package-registry', 'package-registry/distribution': distribution };
}

export const DEFAULT_REPLICAS: Record<string, number> = { production: 3 };
export const FALLBACK_REPLICAS = 2;

export interface Resources {
  requests: { cpu: string; memory: string };
  limits: { cpu: string; memory: string };
}

/**
 * The server keeps the whole package index in memory; snapshot serves the
 * most packages. The memory limit is twice the request so a reload of the
 * index (old and new side by side) does not get the pod OOM-killed.
 */
export const DEFAULT_RESOURCES: Resources = {
  requests: { cpu: '250m', memory: '512Mi' },
  limits: { cpu: '1', memory: '1Gi' },
};

export interface HpaSpec {
  min: number;
  max: number;
  /** target average CPU utilisation, percent of the request */
  cpu: number;
}

export const DEFAULT_HPA_CPU = 70;

export interface ManifestInput {
  distribution: string;
  /** image repository without tag */
  repository: string;
  /** the immutable tag: a full commit hash (or a stack version X.Y.Z) */
  tag: string;
  namespace?: string;
  replicas?: number;
  hpa?: HpaSpec;
  resources?: Resources;
}

export class ManifestError extends Error {}

const DISTRIBUTION_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
const COMMIT = /^[0-9a-f]{40}([0-9a-f]{24})?$/;

/** A tag that cannot move: a full commit hash or a stack version. The name tags (`production`) move with every build. */
export function isPinnedTag(tag: string): boolean {
  return COMMIT.test(tag) || isStackVersion(tag);
}

/** Every problem with the input, together (empty: fine). */
export function checkInput(m: ManifestInput): string[] {
  const problems: string[] = [];
  if (!DISTRIBUTION_NAME.test(m.distribution) || deploymentName(m.distribution).length > 63) {
    problems.push(`distribution "${m.distribution}": must be lower-case letters, digits and - (it becomes part of the name ${deploymentName(m.distribution)}, at most 63 characters)`);
  }
  if (!isPinnedTag(m.tag)) {
    problems.push(`image tag "${m.tag}": must be a full commit hash (40 hex digits) or a stack version X.Y.Z; name tags such as "${m.distribution}" move with every build and would not pin the image`);
  }
  if (m.repository === '' || /[:@]/.test(m.repository.split('/').pop() ?? '')) {
    problems.push(`repository "${m.repository}": must be an image repository without tag or digest`);
  }
  if (m.replicas !== undefined && (!Number.isInteger(m.replicas) || m.replicas < 1)) {
    problems.push(`replicas ${m.replicas}: must be a whole number of at least 1`);
  }
  if (m.hpa) {
    const { min, max, cpu } = m.hpa;
    if (!Number.isInteger(min) || !Number.isInteger(max) || min < 1 || max < min) problems.push(`hpa ${min}-${max}: must be MIN-MAX with 1 <= MIN <= MAX`);
    if (!Number.isInteger(cpu) || cpu < 1 || cpu > 100) problems.push(`hpa cpu ${cpu}: must be a percentage 1-100`);
  }
  return problems;
}

export function imageRef(repository: string, tag: string): string {
  return `${repository}:${tag}`;
}

export type K8sObject = Record<string, unknown> & { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> } };

export function deployment(m: ManifestInput): K8sObject {
  const name = deploymentName(m.distribution);
  const namespace = m.namespace ?? NAMESPACE;
  const resources = m.resources ?? DEFAULT_RESOURCES;
  const replicas = m.replicas ?? DEFAULT_REPLICAS[m.distribution] ?? FALLBACK_REPLICAS;
  const spec: Record<string, unknown> = {
    // With an autoscaler the replica count is its business: a replicas field
    // here would reset the scale to this number on every `kubectl apply`.
    ...(m.hpa ? {} : { replicas }),
    revisionHistoryLimit: 10,
    // A rollout that makes no progress for this long is marked failed
    // (ProgressDeadlineExceeded), which is what `rollout status` reports.
    progressDeadlineSeconds: 600,
    selector: { matchLabels: selector(m.distribution) },
    // Never below the desired count: Fleet in every Kibana reads this service.
    strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
    template: {
      metadata: { labels: labels(m.distribution) },
      spec: {
        // The registry never talks to the Kubernetes API.
        automountServiceAccountToken: false,
        enableServiceLinks: false,
        // The server drains open requests on SIGTERM.
        terminationGracePeriodSeconds: 30,
        securityContext: {
          runAsNonRoot: true,
          runAsUser: RUN_AS,
          runAsGroup: RUN_AS,
          fsGroup: RUN_AS,
          seccompProfile: { type: 'RuntimeDefault' },
        },
        containers: [
          {
            name: CONTAINER,
            image: imageRef(m.repository, m.tag),
            // The tag is a commit hash and never moves, so a cached copy is the right one.
            imagePullPolicy: 'IfNotPresent',
            ports: [{ name: 'http', containerPort: CONTAINER_PORT, protocol: 'TCP' }],
            resources,
            securityContext: {
              allowPrivilegeEscalation: false,
              readOnlyRootFilesystem: true,
              privileged: false,
              capabilities: { drop: ['ALL'] },
            },
            // /health answers 200 only once the package index is loaded
            // (the server binds after indexing), so it is the readiness signal.
            readinessProbe: {
              httpGet: { path: HEALTH_PATH, port: 'http' },
              initialDelaySeconds: 5,
              periodSeconds: 5,
              timeoutSeconds: 2,
              failureThreshold: 3,
            },
            // The same endpoint, but patient: indexing a large distribution
            // takes a while, and restarting a pod that is still indexing only
            // starts the indexing again. Two minutes of grace, then a minute of
            // failures, before the kubelet restarts a wedged server.
            livenessProbe: {
              httpGet: { path: HEALTH_PATH, port: 'http' },
              initialDelaySeconds: 120,
              periodSeconds: 10,
              timeoutSeconds: 5,
              failureThreshold: 6,
            },
            // The only place the process may write (Node's os.tmpdir()); the
            // root filesystem is read-only.
            volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
          },
        ],
        volumes: [{ name: 'tmp', emptyDir: { sizeLimit: '256Mi' } }],
      },
    },
  };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace, labels: labels(m.distribution) },
    spec,
  };
}

export function service(m: ManifestInput): K8sObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: deploymentName(m.distribution), namespace: m.namespace ?? NAMESPACE, labels: labels(m.distribution) },
    spec: {
      type: 'ClusterIP',
      selector: selector(m.distribution),
      ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }],
    },
  };
}

/**
 * autoscaling/v1 on purpose: it is served by every Kubernetes release
 * (v2beta2 is gone since 1.26, v2 only exists since 1.23) and CPU is the only
 * metric this needs.
 */
export function autoscaler(m: ManifestInput & { hpa: HpaSpec }): K8sObject {
  const name = deploymentName(m.distribution);
  return {
    apiVersion: 'autoscaling/v1',
    kind: 'HorizontalPodAutoscaler',
    metadata: { name, namespace: m.namespace ?? NAMESPACE, labels: labels(m.distribution) },
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name },
      minReplicas: m.hpa.min,
      maxReplicas: m.hpa.max,
      targetCPUUtilizationPercentage: m.hpa.cpu,
    },
  };
}

/** The objects for one distribution, in apply order. Throws ManifestError listing every problem. */
export function manifests(m: ManifestInput): K8sObject[] {
  const problems = checkInput(m);
  if (problems.length > 0) throw new ManifestError(problems.join('; '));
  const objects = [service(m), deployment(m)];
  if (m.hpa) objects.push(autoscaler({ ...m, hpa: m.hpa }));
  return objects;
}

/** Multi-document YAML as `kubectl apply -f` reads it. */
export function toYaml(objects: K8sObject[]): string {
  // No anchors/aliases: the same labels object appears in several places, and
  // some tools that read manifests do not resolve YAML aliases.
  return objects.map((o) => YAML.stringify(o, { aliasDuplicateObjects: false, lineWidth: 0 })).join('---\n');
}

/** One JSON document (a v1 List), for machines and `kubectl apply -f -`. */
export function toJsonList(objects: K8sObject[]): string {
  return `${JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }, null, 2)}\n`;
}

/** File name of an object under --out: distinct per distribution and kind. */
export function fileName(o: K8sObject): string {
  return `${o.metadata.name}.${o.kind.toLowerCase()}.yaml`;
}

/** `3-10` -> {min: 3, max: 10}. */
export function parseHpa(text: string, cpu = DEFAULT_HPA_CPU): HpaSpec {
  const m = /^(\d+)-(\d+)$/.exec(text);
  if (!m) throw new ManifestError(`--hpa ${text}: must be MIN-MAX, e.g. 3-10`);
  return { min: Number(m[1]), max: Number(m[2]), cpu };
}
