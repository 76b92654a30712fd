import { expect } from 'chai';
import YAML from 'yaml';
import {
  autoscaler, checkInput, CONTAINER, deployment, deploymentName, fileName, isPinnedTag, ManifestError, manifests,
  NAMESPACE, parseHpa, selector, service, toJsonList, toYaml, type ManifestInput,
} from '../../builder/k8s/manifests.js';
import { parseDuration, UsageError } from '../../builder/k8s/cli.js';
import { podTrouble, summary, type RolloutResult } from '../../builder/k8s/rollout.js';
import { ClusterUnreachableError, firstLine, Kubectl, KubectlError, KubectlMissingError, looksNotFound, looksUnreachable, NotFoundError } from '../../builder/k8s/kubectl.js';

const COMMIT = '0123456789abcdef0123456789abcdef01234567';
const input: ManifestInput = { distribution: 'staging', repository: 'localhost:5000/package-registry/distribution', tag: COMMIT };

const podSpec = (d: any) => d.spec.template.spec;
const container = (d: any) => podSpec(d).containers.find((c: any) => c.name === CONTAINER);

describe('k8s manifests', () => {
  it('uses the names the package-storage rollout command uses', () => {
    expect(deploymentName('production')).to.equal('package-registry-production-vanilla');
    expect(NAMESPACE).to.equal('package-registry');
    const [svc, dep] = manifests(input);
    expect(dep.kind).to.equal('Deployment');
    expect(dep.metadata).to.include({ name: 'package-registry-staging-vanilla', namespace: 'package-registry' });
    expect(svc.kind).to.equal('Service');
    expect(svc.metadata.name).to.equal('package-registry-staging-vanilla');
  });

  it('pins the image by its commit-hash tag, in the container kubectl set image addresses', () => {
    const c = container(deployment(input));
    expect(c.name).to.equal('registry');
    expect(c.image).to.equal(`localhost:5000/package-registry/distribution:${COMMIT}`);
    expect(c.imagePullPolicy).to.equal('IfNotPresent');
  });

  it('refuses tags that move, and every other problem at once', () => {
    expect(isPinnedTag(COMMIT)).to.equal(true);
    expect(isPinnedTag('8.11.0')).to.equal(true);
    expect(isPinnedTag('staging')).to.equal(false);
    expect(isPinnedTag('977b99b')).to.equal(false);
    expect(() => manifests({ ...input, tag: 'staging' })).to.throw(ManifestError, /full commit hash/);
    const problems = checkInput({ ...input, distribution: 'Prod!', tag: 'latest', repository: 'r:1', replicas: 0, hpa: { min: 5, max: 2, cpu: 120 } });
    expect(problems).to.have.length(6);
  });

  it('selects with labels the pod template carries, including app=package-registry', () => {
    const d = deployment(input) as any;
    expect(d.spec.selector.matchLabels).to.deep.equal(selector('staging'));
    expect(d.spec.template.metadata.labels).to.include(d.spec.selector.matchLabels);
    expect(d.spec.template.metadata.labels.app).to.equal('package-registry');
    expect((service(input) as any).spec.selector).to.deep.equal(selector('staging'));
    // production and staging side by side in one namespace must not select each other's pods
    expect(selector('production')).to.not.deep.equal(selector('staging'));
  });

  it('runs as non-root with a read-only root filesystem and a writable /tmp', () => {
    const d = deployment(input) as any;
    expect(podSpec(d).securityContext).to.include({ runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000 });
    expect(podSpec(d).automountServiceAccountToken).to.equal(false);
    const c = container(d);
    expect(c.securityContext).to.deep.include({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(c.volumeMounts).to.deep.equal([{ name: 'tmp', mountPath: '/tmp' }]);
    expect(podSpec(d).volumes[0]).to.deep.include({ name: 'tmp' });
    expect(podSpec(d).volumes[0].emptyDir).to.be.an('object');
  });

  it('probes /health on port 8080: readiness early, liveness patiently', () => {
    const c = container(deployment(input));
    expect(c.ports).to.deep.equal([{ name: 'http', containerPort: 8080, protocol: 'TCP' }]);
    expect(c.readinessProbe.httpGet).to.deep.equal({ path: '/health', port: 'http' });
    expect(c.livenessProbe.httpGet).to.deep.equal({ path: '/health', port: 'http' });
    const patience = (p: any) => p.initialDelaySeconds + p.periodSeconds * p.failureThreshold;
    expect(patience(c.livenessProbe)).to.be.greaterThan(patience(c.readinessProbe) * 4);
  });

  it('has requests and limits, and never goes below the wanted count during a rollout', () => {
    const d = deployment(input) as any;
    const c = container(d);
    expect(c.resources.requests).to.have.keys('cpu', 'memory');
    expect(c.resources.limits).to.have.keys('cpu', 'memory');
    expect(d.spec.strategy.rollingUpdate.maxUnavailable).to.equal(0);
  });

  it('replicas: 3 for production, 2 otherwise, or as given', () => {
    expect((deployment({ ...input, distribution: 'production' }) as any).spec.replicas).to.equal(3);
    expect((deployment(input) as any).spec.replicas).to.equal(2);
    expect((deployment({ ...input, replicas: 5 }) as any).spec.replicas).to.equal(5);
  });

  it('with an autoscaler the Deployment leaves replicas to it', () => {
    const objs = manifests({ ...input, hpa: parseHpa('3-10') });
    expect(objs.map((o) => o.kind)).to.deep.equal(['Service', 'Deployment', 'HorizontalPodAutoscaler']);
    expect((objs[1] as any).spec).to.not.have.property('replicas');
    const h = autoscaler({ ...input, hpa: { min: 3, max: 10, cpu: 70 } }) as any;
    expect(h.apiVersion).to.equal('autoscaling/v1');
    expect(h.spec).to.deep.equal({
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'package-registry-staging-vanilla' },
      minReplicas: 3, maxReplicas: 10, targetCPUUtilizationPercentage: 70,
    });
    expect(() => parseHpa('3')).to.throw(ManifestError, /MIN-MAX/);
  });

  it('YAML: one document per object, no anchors, reads back to the same objects', () => {
    const objs = manifests({ ...input, hpa: parseHpa('2-4') });
    const text = toYaml(objs);
    expect(text).to.not.match(/[&*]a\d/);
    expect(YAML.parseAllDocuments(text).map((d) => d.toJS())).to.deep.equal(objs);
    expect(JSON.parse(toJsonList(objs))).to.deep.equal({ apiVersion: 'v1', kind: 'List', items: objs });
    expect(objs.map(fileName)).to.deep.equal([
      'package-registry-staging-vanilla.service.yaml',
      'package-registry-staging-vanilla.deployment.yaml',
      'package-registry-staging-vanilla.horizontalpodautoscaler.yaml',
    ]);
  });

  it('the same input gives the same text', () => {
    expect(toYaml(manifests(input))).to.equal(toYaml(manifests({ ...input })));
  });
});

describe('k8s rollout helpers', () => {
  it('parses --timeout durations', () => {
    expect(parseDuration('90')).to.equal(90);
    expect(parseDuration('90s')).to.equal(90);
    expect(parseDuration('10m')).to.equal(600);
    expect(parseDuration('1h')).to.equal(3600);
    expect(() => parseDuration('soon')).to.throw(UsageError);
    expect(() => parseDuration('0s')).to.throw(UsageError);
  });

  it('tells an unreachable cluster from a missing object', () => {
    expect(looksUnreachable('The connection to the server 127.0.0.1:6443 was refused - did you specify the right host or port?')).to.equal(true);
    expect(looksUnreachable('error: context "nope" does not exist')).to.equal(true);
    expect(looksUnreachable('Error from server (NotFound): namespaces "x" not found')).to.equal(false);
    expect(looksNotFound('Error from server (NotFound): namespaces "x" not found')).to.equal(true);
    expect(firstLine('\nError from server (NotFound): deployments.apps "d" not found\n')).to.equal('deployments.apps "d" not found');
    expect(firstLine('error: timed out waiting for the condition\n')).to.equal('timed out waiting for the condition');
  });

  it('says why a pod is not ready', () => {
    const pod = (extra: any) => ({ metadata: { name: 'p' }, spec: {}, ...extra });
    expect(podTrouble(pod({ status: { phase: 'Pending' } }))).to.match(/not scheduled/);
    expect(podTrouble(pod({ spec: { nodeName: 'n1' }, status: { phase: 'Pending', containerStatuses: [{ name: 'registry', ready: false, restartCount: 0, state: { waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image' } } }] } })))
      .to.equal('ImagePullBackOff: Back-off pulling image');
    expect(podTrouble(pod({ spec: { nodeName: 'n1' }, status: { phase: 'Running', containerStatuses: [{ name: 'registry', ready: false, restartCount: 2, state: { running: {} } }] } })))
      .to.match(/readiness probe on \/health failing, 2 restarts/);
  });

  it('ends with one line that says what happened', () => {
    const base: RolloutResult = { ok: true, deployment: 'package-registry-staging-vanilla', namespace: 'package-registry', action: 'set-image', from: 'r:a', to: 'r:b', revision: '2', seconds: 3.2 };
    expect(summary(base)).to.equal('package-registry-staging-vanilla: rolled out r:b (revision 2) in 3.2s');
    expect(summary({ ...base, action: 'restart' })).to.match(/restarted at r:b/);
    const failed = { ...base, ok: false, reason: 'timed out waiting for the condition' };
    expect(summary(failed)).to.match(/did not finish: timed out.*--undo/);
    expect(summary({ ...failed, undo: { ok: true, image: 'r:a', revision: '3' } })).to.match(/rolled back to r:a \(revision 3\)$/);
  });

  it('every kubectl call has a time limit, and a missing kubectl is one clear error', async () => {
    // /bin/sleep stands in for a kubectl that hangs
    const hung = new Kubectl({ bin: '/bin/sleep', timeoutMs: 200 });
    const started = Date.now();
    let caught: unknown;
    await hung.run(['5']).catch((e) => { caught = e; });
    expect(caught).to.be.instanceOf(KubectlError);
    expect((caught as Error).message).to.match(/did not finish within 0s/);
    expect(Date.now() - started).to.be.lessThan(3000);
    await new Kubectl({ bin: '/nonexistent/kubectl' }).run(['version']).then(
      () => expect.fail('should not start'),
      (e) => expect(e).to.be.instanceOf(KubectlMissingError),
    );
  });

  it('turns kubectl failures into errors by kind', () => {
    const k = new Kubectl({ context: 'prod' });
    expect(k.classify('The connection to the server 10.0.0.1:6443 was refused - did you specify the right host or port?', 'x'))
      .to.be.instanceOf(ClusterUnreachableError).and.have.property('message', 'no cluster reachable through context prod: The connection to the server 10.0.0.1:6443 was refused - did you specify the right host or port?');
    expect(k.classify('Error from server (NotFound): deployments.apps "d" not found', 'deployment d'))
      .to.be.instanceOf(NotFoundError).and.have.property('message', 'deployment d: deployments.apps "d" not found');
    const forbidden = k.classify('Error from server (Forbidden): namespaces "p" is forbidden: User "u" cannot get resource', 'namespace p');
    expect(forbidden.constructor).to.equal(KubectlError);
  });
});
