import { CONTAINER, deploymentName, imageRef } from './manifests.js';
import { ClusterUnreachableError, firstLine, Kubectl, KubectlError, NotFoundError } from './kubectl.js';

/**
 * A rollout of one distribution: point its Deployment at the image of a
 * commit (or restart it when it already runs that image), wait for the
 * rollout with a time limit, and when it does not finish say what is stuck
 * and, if asked, roll back and wait for that too.
 */

export interface RolloutOptions {
  distribution: string;
  repository: string;
  tag: string;
  namespace: string;
  timeoutSeconds: number;
  undo: boolean;
  /** progress lines (to stderr in the CLI) */
  log: (line: string) => void;
}

export interface RolloutResult {
  ok: boolean;
  deployment: string;
  namespace: string;
  /** the kubeconfig context given with --context (absent: the current one) */
  context?: string;
  action: 'set-image' | 'restart';
  from: string;
  to: string;
  /** the Deployment's revision afterwards (deployment.kubernetes.io/revision) */
  revision?: string;
  /** kubectl's reason the wait ended, when it failed */
  reason?: string;
  /** a few lines on what is stuck, when it failed */
  stuck?: string[];
  undo?: { ok: boolean; image?: string; revision?: string; reason?: string };
  seconds: number;
}

interface Condition { type: string; status: string; reason?: string; message?: string }
interface Container { name: string; image: string }
interface DeploymentJson {
  metadata: { name: string; generation?: number; annotations?: Record<string, string> };
  spec: { replicas?: number; paused?: boolean; selector: { matchLabels?: Record<string, string> }; template: { spec: { containers: Container[] } } };
  status?: { replicas?: number; updatedReplicas?: number; readyReplicas?: number; availableReplicas?: number; unavailableReplicas?: number; conditions?: Condition[] };
}
interface ReplicaSetJson {
  metadata: { name: string; annotations?: Record<string, string>; ownerReferences?: Array<{ kind: string; name: string }> };
  spec: { replicas?: number; template: { spec: { containers: Container[] } } };
  status?: { replicas?: number; readyReplicas?: number; availableReplicas?: number };
}
interface PodJson {
  metadata: { name: string; deletionTimestamp?: string };
  spec: { nodeName?: string };
  status?: {
    phase?: string;
    conditions?: Condition[];
    containerStatuses?: Array<{ name: string; ready: boolean; restartCount: number; state?: { waiting?: { reason?: string; message?: string }; terminated?: { reason?: string; exitCode?: number } } }>;
  };
}

const REVISION = 'deployment.kubernetes.io/revision';

export class RolloutError extends KubectlError {}

export function containerImage(d: DeploymentJson): string {
  const c = d.spec.template.spec.containers.find((x) => x.name === CONTAINER);
  if (!c) throw new RolloutError(`deployment ${d.metadata.name} has no container named "${CONTAINER}" (found: ${d.spec.template.spec.containers.map((x) => x.name).join(', ')}); it was not made by npm run manifests`);
  return c.image;
}

function selectorOf(d: DeploymentJson): string {
  return Object.entries(d.spec.selector.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`).join(',');
}

/** Checks the namespace and the Deployment, in that order, so the message names the first thing missing. */
export async function findDeployment(k: Kubectl, distribution: string, namespace: string): Promise<DeploymentJson> {
  const ns = await k.run(['get', 'namespace', namespace, '-o', 'name'], { timeoutMs: 30_000 });
  if (ns.code !== 0) {
    const err = k.classify(ns.stderr, `namespace ${namespace}`);
    if (err instanceof NotFoundError) throw new NotFoundError(`namespace "${namespace}" does not exist in ${k.where}; create it with: kubectl create namespace ${namespace}`);
    if (err instanceof ClusterUnreachableError) throw err;
    // anything else (e.g. not allowed to read namespaces): the Deployment lookup below decides
  }
  const name = deploymentName(distribution);
  try {
    return await k.json<DeploymentJson>(['get', 'deployment', name, '-n', namespace], { what: `deployment ${name}` });
  } catch (err) {
    if (err instanceof NotFoundError) {
      throw new NotFoundError(`deployment ${name} not found in namespace ${namespace} (${k.where}); apply the manifests first: npm run --silent manifests -- ${distribution} | kubectl apply -f -`);
    }
    throw err;
  }
}

/** A few lines on why a rollout is not finishing: failing conditions, the ReplicaSets, the pods that are not ready. */
export async function whatIsStuck(k: Kubectl, name: string, namespace: string): Promise<string[]> {
  const lines: string[] = [];
  try {
    const d = await k.json<DeploymentJson>(['get', 'deployment', name, '-n', namespace]);
    const s = d.status ?? {};
    lines.push(`deployment ${name}: ${s.updatedReplicas ?? 0} updated, ${s.readyReplicas ?? 0} ready, ${s.availableReplicas ?? 0} available of ${d.spec.replicas ?? '?'} wanted`);
    for (const c of s.conditions ?? []) {
      if (c.status !== 'True' || c.reason === 'ProgressDeadlineExceeded') lines.push(`condition ${c.type}=${c.status}${c.reason ? ` (${c.reason})` : ''}${c.message ? `: ${c.message}` : ''}`);
    }
    const sel = selectorOf(d);
    const rss = (await k.json<{ items: ReplicaSetJson[] }>(['get', 'replicasets', '-n', namespace, '-l', sel])).items
      .filter((rs) => (rs.metadata.ownerReferences ?? []).some((o) => o.kind === 'Deployment' && o.name === name))
      .filter((rs) => (rs.spec.replicas ?? 0) > 0 || (rs.status?.replicas ?? 0) > 0)
      .sort((a, b) => Number(b.metadata.annotations?.[REVISION] ?? 0) - Number(a.metadata.annotations?.[REVISION] ?? 0));
    for (const rs of rss) {
      const img = rs.spec.template.spec.containers.find((c) => c.name === CONTAINER)?.image ?? '?';
      lines.push(`replicaset ${rs.metadata.name} (revision ${rs.metadata.annotations?.[REVISION] ?? '?'}, ${img}): ${rs.status?.readyReplicas ?? 0}/${rs.spec.replicas ?? 0} ready`);
    }
    const pods = (await k.json<{ items: PodJson[] }>(['get', 'pods', '-n', namespace, '-l', sel])).items;
    const notReady = pods.filter((p) => !(p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'));
    for (const p of notReady.slice(0, 5)) lines.push(`pod ${p.metadata.name}: ${podTrouble(p)}`);
    if (notReady.length > 5) lines.push(`... and ${notReady.length - 5} more pods not ready`);
  } catch (err) {
    lines.push(`(could not inspect the rollout: ${(err as Error).message})`);
  }
  return lines;
}

/** The most specific reason a pod is not ready. */
export function podTrouble(p: PodJson): string {
  if (p.metadata.deletionTimestamp) return 'terminating';
  for (const cs of p.status?.containerStatuses ?? []) {
    const w = cs.state?.waiting;
    if (w?.reason) return `${w.reason}${w.message ? `: ${w.message}` : ''}${cs.restartCount ? ` (${cs.restartCount} restarts)` : ''}`;
    const t = cs.state?.terminated;
    if (t) return `terminated ${t.reason ?? ''} exit ${t.exitCode ?? '?'}`.replace(/\s+/g, ' ');
    if (!cs.ready) return `running, not ready (readiness probe on /health failing${cs.restartCount ? `, ${cs.restartCount} restarts` : ''})`;
  }
  const sched = (p.status?.conditions ?? []).find((c) => c.type === 'PodScheduled');
  if (sched?.status === 'False') return `not scheduled${sched.reason ? ` (${sched.reason})` : ''}${sched.message ? `: ${sched.message}` : ''}`;
  if (!p.spec.nodeName) return `${p.status?.phase ?? 'Pending'}, not scheduled on a node yet`;
  return `${p.status?.phase ?? 'Pending'} on ${p.spec.nodeName}, containers not started`;
}

/** Waits for the rollout; resolves with kubectl's reason when it does not finish. */
async function waitFor(k: Kubectl, name: string, namespace: string, timeoutSeconds: number, log: (l: string) => void): Promise<string | undefined> {
  const r = await k.run(['rollout', 'status', `deployment/${name}`, '-n', namespace, `--timeout=${timeoutSeconds}s`], {
    // kubectl enforces --timeout itself; this is the backstop if it hangs.
    timeoutMs: (timeoutSeconds + 30) * 1000,
    onLine: (l) => log(l),
  });
  if (r.code === 0) return undefined;
  const err = k.classify(r.stderr, 'rollout status');
  if (err instanceof ClusterUnreachableError || err instanceof NotFoundError) throw err;
  return firstLine(r.stderr) || `kubectl rollout status exited with ${r.code}`;
}

export async function rollout(k: Kubectl, o: RolloutOptions): Promise<RolloutResult> {
  const started = Date.now();
  const name = deploymentName(o.distribution);
  const ns = o.namespace;
  const d = await findDeployment(k, o.distribution, ns);
  if (d.spec.paused) {
    throw new RolloutError(`deployment ${name} is paused, so a rollout would never start; resume it first: kubectl rollout resume deployment/${name} -n ${ns}`);
  }
  const from = containerImage(d);
  const to = imageRef(o.repository, o.tag);
  const action = from === to ? 'restart' : 'set-image';

  if (action === 'restart') {
    o.log(`${name}: already at ${to}; restarting its pods`);
    await k.ok(['rollout', 'restart', `deployment/${name}`, '-n', ns], { what: `rollout restart ${name}` });
  } else {
    o.log(`${name}: ${from} -> ${to}`);
    await k.ok(['set', 'image', `deployment/${name}`, '-n', ns, `${CONTAINER}=${to}`], { what: `set image ${name}` });
  }
  // The controller copies the Deployment's annotations to its newest
  // ReplicaSet on every sync, so `kubectl rollout history` says what each
  // revision was. After the change, not before: before, the sync that the
  // annotation itself triggers would stamp it on the previous revision.
  const cause = action === 'restart' ? `restart ${to}` : `set image ${to}`;
  await k.ok(['annotate', `deployment/${name}`, '-n', ns, '--overwrite', `kubernetes.io/change-cause=${cause}`], { what: `annotate deployment ${name}` });

  const reason = await waitFor(k, name, ns, o.timeoutSeconds, o.log);
  const result: RolloutResult = { ok: reason === undefined, deployment: name, namespace: ns, ...(k.opts.context ? { context: k.opts.context } : {}), action, from, to, seconds: 0 };
  if (reason !== undefined) {
    result.reason = reason;
    result.stuck = await whatIsStuck(k, name, ns);
    for (const l of result.stuck) o.log(`stuck: ${l}`);
    if (o.undo) {
      o.log(`${name}: rolling back (kubectl rollout undo)`);
      const undo = await k.run(['rollout', 'undo', `deployment/${name}`, '-n', ns], { timeoutMs: 30_000 });
      if (undo.code !== 0) {
        result.undo = { ok: false, reason: firstLine(undo.stderr) };
      } else {
        const undoReason = await waitFor(k, name, ns, o.timeoutSeconds, o.log);
        const after = await k.json<DeploymentJson>(['get', 'deployment', name, '-n', ns]);
        await k.ok(['annotate', `deployment/${name}`, '-n', ns, '--overwrite', `kubernetes.io/change-cause=undo to ${containerImage(after)} (${to} did not roll out)`], { what: `annotate deployment ${name}` });
        result.undo = { ok: undoReason === undefined, image: containerImage(after), revision: after.metadata.annotations?.[REVISION], ...(undoReason ? { reason: undoReason } : {}) };
      }
    }
  }
  const final = await k.json<DeploymentJson>(['get', 'deployment', name, '-n', ns]);
  result.revision = final.metadata.annotations?.[REVISION];
  result.seconds = Math.round((Date.now() - started) / 100) / 10;
  return result;
}

/** The one-line summary the CLI ends with. */
export function summary(r: RolloutResult): string {
  const verb = r.action === 'restart' ? 'restarted at' : 'rolled out';
  if (r.ok) return `${r.deployment}: ${verb} ${r.to} (revision ${r.revision ?? '?'}) in ${r.seconds}s`;
  let s = `${r.deployment}: rollout of ${r.to} did not finish: ${r.reason}`;
  if (r.undo) s += r.undo.ok ? `; rolled back to ${r.undo.image} (revision ${r.undo.revision ?? '?'})` : `; rollback did not finish either: ${r.undo.reason}`;
  else s += `; roll back with: kubectl rollout undo deployment/${r.deployment} -n ${r.namespace} (or run again with --undo)`;
  return s;
}
