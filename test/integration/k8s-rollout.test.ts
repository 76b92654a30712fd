/**
 * The manifests and the rollout against a real Kubernetes control plane
 * (kube-apiserver + kube-controller-manager built by ../shared/ci/k8s/build.sh,
 * started by up.sh on 127.0.0.1:6443). There is no kubelet: ready.sh stands in
 * for its readiness report, so the test runs it every second while a rollout
 * is supposed to make progress, and not at all when a rollout must get stuck.
 *
 * Only the local control plane's own kubeconfig is used, never the ambient
 * KUBECONFIG: this test creates and deletes the namespace package-registry.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DIST_ROOT } from '../../server/config.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const CLI = path.join(DIST_ROOT, 'builder', 'k8s', 'cli.js');
const SHARED_K8S = path.resolve(ROOT, '..', 'shared', 'ci', 'k8s');
const K8S_DIR = process.env.K8S_DIR ?? '/var/tmp/k8s-local';
const KUBECONFIG = path.join(K8S_DIR, 'run', 'kubeconfig');
const NS = 'package-registry';
const REPO = 'localhost:5000/package-registry/distribution';
const SELECTOR = 'app=package-registry';
const C1 = '1111111111111111111111111111111111111111';
const C2 = '2222222222222222222222222222222222222222';
const C3 = '3333333333333333333333333333333333333333';
const C4 = '4444444444444444444444444444444444444444';

interface Run { code: number; stdout: string; stderr: string }

/** Runs a program with a time limit; never rejects for a non-zero exit. */
function run(cmd: string, args: string[], o: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, KUBECONFIG, ...o.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${cmd} ${args.join(' ')}: no answer within ${o.timeoutMs ?? 60_000} ms`)); }, o.timeoutMs ?? 60_000);
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code) => { clearTimeout(timer); resolve({ code: code ?? 1, stdout, stderr }); });
    child.stdin.on('error', () => {});
    child.stdin.end(o.input ?? '');
  });
}

const cli = (args: string[], o: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}) => run(process.execPath, [CLI, ...args], o);
const kubectl = (args: string[], o: { input?: string; timeoutMs?: number } = {}) => run('kubectl', args, o);

async function kubectlOk(args: string[], input?: string): Promise<string> {
  const r = await kubectl(args, { input });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

async function getJson<T = any>(args: string[]): Promise<T> {
  return JSON.parse(await kubectlOk([...args, '-o', 'json'])) as T;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let readyShWorks = true;

/**
 * One round of the kubelet's readiness report: ready.sh, or, with a kubectl
 * older than 1.24 (Debian bookworm's kubernetes-client is 1.20) that has no
 * `patch --subresource`, the same status written through the pod's status
 * endpoint with `kubectl replace --raw`.
 */
async function markReady(): Promise<void> {
  if (readyShWorks) {
    const r = await run('bash', [path.join(SHARED_K8S, 'ready.sh'), SELECTOR, NS], { timeoutMs: 30_000 });
    if (r.code === 0 || !/unknown flag: --subresource/.test(r.stderr)) return;
    readyShWorks = false;
    console.log('    (this kubectl has no patch --subresource, which ready.sh uses; marking pods ready through the status endpoint instead)');
  }
  const pods = await getJson(['get', 'pods', '-n', NS, '-l', SELECTOR]);
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  for (const p of pods.items.filter((x: any) => x.status?.phase === 'Pending')) {
    p.status = {
      ...p.status,
      phase: 'Running',
      conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: now }, { type: 'ContainersReady', status: 'True', lastTransitionTime: now }],
    };
    await kubectl(['replace', '--raw', `/api/v1/namespaces/${NS}/pods/${p.metadata.name}/status`, '-f', '-'], { input: JSON.stringify(p), timeoutMs: 30_000 });
  }
}

/** Plays the kubelet while `work` runs: marks new pods Running and Ready every second. */
async function withReadiness<T>(work: () => Promise<T>): Promise<T> {
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      await markReady().catch(() => undefined);
      await sleep(1000);
    }
  })();
  try {
    return await work();
  } finally {
    stop = true;
    await loop;
  }
}

async function deleteNamespace(): Promise<void> {
  await kubectl(['delete', 'namespace', NS, '--ignore-not-found', '--wait=false'], { timeoutMs: 30_000 });
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    const r = await kubectl(['get', 'namespace', NS, '-o', 'name'], { timeoutMs: 10_000 });
    if (r.code !== 0 && /not ?found/i.test(r.stderr)) return;
    await sleep(500);
  }
  throw new Error(`namespace ${NS} still there after 120 s`);
}

const deploymentOf = (d: string) => `package-registry-${d}-vanilla`;
const imageOf = (dep: any) => dep.spec.template.spec.containers.find((c: any) => c.name === 'registry').image;

async function replicaSets(d: string): Promise<Array<{ name: string; image: string; revision: string; ready: number; replicas: number }>> {
  const list = await getJson(['get', 'replicasets', '-n', NS, '-l', `package-registry/distribution=${d}`]);
  return list.items.map((rs: any) => ({
    name: rs.metadata.name,
    image: imageOf(rs),
    revision: rs.metadata.annotations?.['deployment.kubernetes.io/revision'],
    ready: rs.status?.readyReplicas ?? 0,
    replicas: rs.spec.replicas ?? 0,
  }));
}

function binariesPresent(): boolean {
  return ['kube-apiserver', 'kube-controller-manager'].every((b) => fs.existsSync(path.join(K8S_DIR, 'bin', b)));
}

async function which(bin: string): Promise<boolean> {
  return (await run('bash', ['-c', `command -v ${bin}`], { timeoutMs: 10_000 })).code === 0;
}

describe('k8s: errors before any cluster', function () {
  this.timeout(120_000);

  it('kubectl missing: one clear line, exit 1', async () => {
    const r = await cli(['rollout', 'staging', '--repository', REPO, '--image-tag', C1], { env: { PATH: '/nonexistent' } });
    expect(r.code, r.stderr).to.equal(1);
    expect(r.stderr).to.match(/^error: kubectl not found \(kubectl\): install it \(Debian\/Ubuntu: apt-get install kubernetes-client\)/);
  });

  it('no cluster reachable: one clear line, exit 1', async function () {
    if (!(await which('kubectl'))) this.skip();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'k8s-unreachable-'));
    const cfg = path.join(dir, 'kubeconfig');
    // port 9 on 127.0.0.1: nothing listens there
    fs.writeFileSync(cfg, `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:9", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`);
    try {
      const r = await cli(['rollout', 'staging', '--repository', REPO, '--image-tag', C1, '--timeout', '10s'], { env: { KUBECONFIG: cfg } });
      expect(r.code, r.stderr).to.equal(1);
      expect(r.stderr.trim().split('\n')).to.have.length(1);
      expect(r.stderr).to.match(/^error: no cluster reachable through the current context: .*127\.0\.0\.1:9/);
      const c = await cli(['rollout', 'staging', '--repository', REPO, '--image-tag', C1, '--context', 'nope'], { env: { KUBECONFIG: cfg } });
      expect(c.code).to.equal(1);
      expect(c.stderr).to.match(/^error: no cluster reachable through context nope: Error in configuration: context was not found for specified context: nope$/m);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('usage errors exit 2', async () => {
    expect((await cli(['rollout'])).code).to.equal(2);
    expect((await cli(['rollout', 'staging', '--repository', REPO, '--image-tag', 'staging'])).stderr).to.match(/full commit hash/);
    expect((await cli(['manifests', 'staging', '--repository', REPO, '--image-tag', C1, '--bogus'])).code).to.equal(2);
    expect((await cli(['manifests', 'staging', '--repository', REPO, '--image-tag', C1, '--hpa', '3-2'])).code).to.equal(2);
    const help = await cli(['rollout', '--help']);
    expect(help.code).to.equal(0);
    expect(help.stdout).to.match(/--undo/);
  });
});

describe('k8s: manifests and rollout against a real API server', function () {
  this.timeout(900_000);
  let startedHere = false;

  before(async function () {
    if (!(await which('kubectl'))) {
      console.log('    skipped: kubectl is not installed (Debian: apt-get install kubernetes-client)');
      this.skip();
    }
    if (!binariesPresent()) {
      // About 6 minutes, once per machine.
      const b = await run('bash', [path.join(SHARED_K8S, 'build.sh')], { timeoutMs: 1_200_000 }).catch((e: Error) => ({ code: 1, stdout: '', stderr: e.message }));
      if (b.code !== 0 || !binariesPresent()) {
        console.log(`    skipped: no kube-apiserver in ${K8S_DIR}/bin and ${SHARED_K8S}/build.sh could not build it: ${b.stderr.trim().split('\n').slice(-3).join(' | ')}`);
        this.skip();
      }
    }
    const reachable = fs.existsSync(KUBECONFIG) && (await kubectl(['get', '--raw', '/readyz'], { timeoutMs: 10_000 })).code === 0;
    if (!reachable) {
      const up = await run('bash', [path.join(SHARED_K8S, 'up.sh')], { timeoutMs: 180_000 });
      if (up.code !== 0) throw new Error(`up.sh failed: ${up.stderr}`);
      startedHere = true;
    }
    await deleteNamespace();
    await kubectlOk(['create', 'namespace', NS]);
    // Pods are admitted only once the namespace's default ServiceAccount exists.
    const deadline = Date.now() + 60_000;
    while ((await kubectl(['get', 'serviceaccount', 'default', '-n', NS])).code !== 0) {
      if (Date.now() > deadline) throw new Error('no default ServiceAccount in the namespace after 60 s');
      await sleep(300);
    }
  });

  after(async function () {
    this.timeout(180_000);
    if (!binariesPresent() || !fs.existsSync(KUBECONFIG)) return;
    await deleteNamespace().catch((e: Error) => console.log(`    cleanup: ${e.message}`));
    if (startedHere) await run('bash', [path.join(SHARED_K8S, 'down.sh')], { timeoutMs: 60_000 });
  });

  it('the API server accepts the manifests, with and without an autoscaler, printed or written to a folder', async () => {
    const withHpa = await cli(['manifests', 'production', '--repository', REPO, '--image-tag', C1, '--hpa', '3-6']);
    expect(withHpa.code, withHpa.stderr).to.equal(0);
    const dry = await kubectl(['apply', '--dry-run=server', '-f', '-'], { input: withHpa.stdout });
    expect(dry.code, dry.stderr).to.equal(0);
    expect(dry.stdout).to.match(/horizontalpodautoscaler.autoscaling\/package-registry-production-vanilla created \(server dry run\)/);

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'k8s-manifests-'));
    try {
      const w = await cli(['manifests', 'production', 'snapshot', '--repository', REPO, '--image-tag', C1, '--out', dir]);
      expect(w.code, w.stderr).to.equal(0);
      expect(fs.readdirSync(dir)).to.have.length(4);
      const dryDir = await kubectl(['apply', '--dry-run=server', '-f', dir]);
      expect(dryDir.code, dryDir.stderr).to.equal(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }

    const json = await cli(['manifests', 'staging', '--repository', REPO, '--image-tag', C1, '--json']);
    expect(JSON.parse(json.stdout).kind).to.equal('List');

    // staging for real, with 2 replicas; then let its first rollout finish
    const yaml = await cli(['manifests', 'staging', '--repository', REPO, '--image-tag', C1, '--replicas', '2']);
    expect(yaml.code, yaml.stderr).to.equal(0);
    const applied = await kubectlOk(['apply', '-f', '-'], yaml.stdout);
    expect(applied).to.match(/deployment.apps\/package-registry-staging-vanilla created/);
    expect(applied).to.match(/service\/package-registry-staging-vanilla created/);
    const status = await withReadiness(() => kubectl(['rollout', 'status', `deployment/${deploymentOf('staging')}`, '-n', NS, '--timeout=120s'], { timeoutMs: 150_000 }));
    expect(status.code, status.stderr).to.equal(0);
    const dep = await getJson(['get', 'deployment', deploymentOf('staging'), '-n', NS]);
    expect(imageOf(dep)).to.equal(`${REPO}:${C1}`);
    expect(dep.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem).to.equal(true);
    expect(dep.status.readyReplicas).to.equal(2);
  });

  it('rolls out a new tag: the image changes, a new ReplicaSet appears, rollout status completes', async () => {
    const r = await withReadiness(() => cli(['rollout', 'staging', '--repository', REPO, '--image-tag', C2, '--timeout', '120s', '--json'], { timeoutMs: 200_000 }));
    expect(r.code, r.stderr).to.equal(0);
    const result = JSON.parse(r.stdout);
    expect(result).to.include({ ok: true, action: 'set-image', from: `${REPO}:${C1}`, to: `${REPO}:${C2}`, deployment: 'package-registry-staging-vanilla', revision: '2' });
    expect(r.stderr).to.match(/successfully rolled out/);
    const dep = await getJson(['get', 'deployment', deploymentOf('staging'), '-n', NS]);
    expect(imageOf(dep)).to.equal(`${REPO}:${C2}`);
    const rss = await replicaSets('staging');
    expect(rss.map((x) => x.image).sort()).to.deep.equal([`${REPO}:${C1}`, `${REPO}:${C2}`]);
    expect(rss.find((x) => x.image.endsWith(C2))).to.include({ replicas: 2, ready: 2 });
    expect(rss.find((x) => x.image.endsWith(C1))).to.include({ replicas: 0 });
  });

  it('the same tag again restarts the pods (restartedAt annotation, a new ReplicaSet, same image)', async () => {
    const r = await withReadiness(() => cli(['rollout', 'staging', '--repository', REPO, '--image-tag', C2, '--timeout', '120s'], { timeoutMs: 200_000 }));
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout.trim()).to.match(new RegExp(`^package-registry-staging-vanilla: restarted at ${REPO}:${C2} \\(revision 3\\) in [\\d.]+s$`));
    const dep = await getJson(['get', 'deployment', deploymentOf('staging'), '-n', NS]);
    expect(dep.spec.template.metadata.annotations).to.have.property('kubectl.kubernetes.io/restartedAt');
    expect(imageOf(dep)).to.equal(`${REPO}:${C2}`);
    const rss = await replicaSets('staging');
    expect(rss).to.have.length(3);
    expect(rss.filter((x) => x.replicas > 0)).to.have.length(1);
    const history = await kubectlOk(['rollout', 'history', `deployment/${deploymentOf('staging')}`, '-n', NS]);
    expect(history).to.match(/3\s+restart localhost:5000/);
  });

  it('a paused deployment is refused before anything changes', async () => {
    await kubectlOk(['rollout', 'pause', `deployment/${deploymentOf('staging')}`, '-n', NS]);
    try {
      const r = await cli(['rollout', 'staging', '--repository', REPO, '--image-tag', C1]);
      expect(r.code).to.equal(1);
      expect(r.stderr.trim()).to.equal('error: deployment package-registry-staging-vanilla is paused, so a rollout would never start; resume it first: kubectl rollout resume deployment/package-registry-staging-vanilla -n package-registry');
      expect(imageOf(await getJson(['get', 'deployment', deploymentOf('staging'), '-n', NS]))).to.equal(`${REPO}:${C2}`);
    } finally {
      await kubectlOk(['rollout', 'resume', `deployment/${deploymentOf('staging')}`, '-n', NS]);
    }
  });

  it('a missing namespace or deployment fails with a clear message', async () => {
    const ns = await cli(['rollout', 'staging', '--repository', REPO, '--image-tag', C2, '--namespace', 'no-such-namespace']);
    expect(ns.code).to.equal(1);
    expect(ns.stderr.trim()).to.equal('error: namespace "no-such-namespace" does not exist in the current context; create it with: kubectl create namespace no-such-namespace');
    const json = await cli(['rollout', 'staging', '--repository', REPO, '--image-tag', C2, '--namespace', 'no-such-namespace', '--json']);
    expect(json.code).to.equal(1);
    expect(JSON.parse(json.stdout)).to.deep.equal({ ok: false, error: 'namespace "no-such-namespace" does not exist in the current context; create it with: kubectl create namespace no-such-namespace' });
    const dep = await cli(['rollout', 'snapshot', '--repository', REPO, '--image-tag', C2]);
    expect(dep.code).to.equal(1);
    expect(dep.stderr.trim()).to.equal('error: deployment package-registry-snapshot-vanilla not found in namespace package-registry (the current context); apply the manifests first: npm run --silent manifests -- snapshot | kubectl apply -f -');
  });

  it('a rollout that does not finish says what is stuck and how to roll back', async () => {
    // no ready.sh: the new pods never become ready
    const r = await cli(['rollout', 'staging', '--repository', REPO, '--image-tag', C3, '--timeout', '5s'], { timeoutMs: 120_000 });
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(/stuck: deployment package-registry-staging-vanilla: 1 updated, 2 ready, 2 available of 2 wanted/);
    expect(r.stderr).to.match(new RegExp(`stuck: replicaset package-registry-staging-vanilla-\\w+ \\(revision 4, ${REPO}:${C3}\\): 0/1 ready`));
    expect(r.stderr).to.match(/stuck: pod package-registry-staging-vanilla-[\w-]+: Pending, not scheduled on a node yet/);
    expect(r.stderr.trim().split('\n').pop()).to.equal(
      `package-registry-staging-vanilla: rollout of ${REPO}:${C3} did not finish: timed out waiting for the condition; roll back with: kubectl rollout undo deployment/package-registry-staging-vanilla -n package-registry (or run again with --undo)`,
    );
    // the old pods still serve
    const rss = await replicaSets('staging');
    expect(rss.find((x) => x.image.endsWith(C2) && x.replicas > 0)).to.include({ replicas: 2, ready: 2 });
    // back to C2 by a normal rollout, so the next test starts from a finished one
    const back = await withReadiness(() => cli(['rollout', 'staging', '--repository', REPO, '--image-tag', C2, '--timeout', '120s'], { timeoutMs: 200_000 }));
    expect(back.code, back.stderr).to.equal(0);
  });

  it('--undo rolls back to the previous image and waits for that', async () => {
    const r = await cli(['rollout', 'staging', '--repository', REPO, '--image-tag', C4, '--timeout', '5s', '--undo', '--json'], { timeoutMs: 120_000 });
    expect(r.code, r.stderr).to.equal(1);
    const result = JSON.parse(r.stdout);
    expect(result).to.deep.include({ ok: false, action: 'set-image', to: `${REPO}:${C4}`, reason: 'timed out waiting for the condition' });
    expect(result.stuck.join('\n')).to.match(/not scheduled/);
    expect(result.undo).to.include({ ok: true, image: `${REPO}:${C2}` });
    const dep = await getJson(['get', 'deployment', deploymentOf('staging'), '-n', NS]);
    expect(imageOf(dep)).to.equal(`${REPO}:${C2}`);
    expect(dep.status.updatedReplicas).to.equal(2);
    expect(dep.status.readyReplicas).to.equal(2);
    const rss = await replicaSets('staging');
    expect(rss.filter((x) => x.image.endsWith(C4) && x.replicas > 0)).to.have.length(0);
    const history = await kubectlOk(['rollout', 'history', `deployment/${deploymentOf('staging')}`, '-n', NS]);
    expect(history.trim().split('\n').pop()).to.match(new RegExp(`^\\d+\\s+undo to ${REPO}:${C2} \\(${REPO}:${C4} did not roll out\\)$`));
  });
});
