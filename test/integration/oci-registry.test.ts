/**
 * The registry client against real registries (Debian's docker-registry on
 * free 127.0.0.1 ports): open, with basic auth (htpasswd), and with token
 * auth against a token service started here, over https with a self-signed
 * certificate; faults injected by a proxy in
 * front of the open one. skopeo reads what the client pushed, independently.
 * Blobs come from a folder of random layers, not from the builder's store.
 * All traffic stays on 127.0.0.1; every registry is stopped in after().
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { expect } from 'chai';
import { RegistryClient, RegistryError, getManifest, headManifest, pullImage, pushImage, type RegistryOptions } from '../../builder/oci/registry.js';
import { parseReference, type ImageReference } from '../../builder/oci/reference.js';
import { MEDIA_TYPES, sha256Digest, type OciImage } from '../../builder/oci/model.js';
import { cleanupTmp, tmpDir } from '../helpers/fixtures.js';
import { DirBlobs, randomImage } from '../helpers/oci-blobs.js';
import { freeTcpPort, registryManifestStatus, startOciRegistry, startTlsRegistry, startTokenRegistry, writeHtpasswd, type RunningOciRegistry } from '../helpers/oci-registry.js';
import { startTokenService, type TokenService } from '../helpers/token-service.js';
import { isBlobDownload, isBlobUpload, startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';

const ref = (host: string, r: string): ImageReference => parseReference(`${host}/${r}`);

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a failure');
}

/** The pulled image holds exactly the pushed bytes: manifest, config and every layer. */
function expectSameImage(pulled: OciImage, pushed: OciImage, from: DirBlobs, to: DirBlobs): void {
  expect(pulled.manifest.equals(pushed.manifest)).to.equal(true);
  expect(pulled.config.equals(pushed.config)).to.equal(true);
  expect(pulled.layers.map((l) => l.digest)).to.deep.equal(pushed.layers.map((l) => l.digest));
  for (const l of pushed.layers) expect(to.read(l.digest).equals(from.read(l.digest)), l.digest).to.equal(true);
}

describe('OCI registry client (docker-registry)', function () {
  this.timeout(120_000);
  const stops: Array<() => unknown> = [];
  let work = '';
  let src: DirBlobs;

  before(() => {
    work = tmpDir('epr-oci-registry-');
    src = new DirBlobs(path.join(work, 'src'));
  });

  after(async () => {
    for (const stop of stops.reverse()) await stop();
    cleanupTmp();
  });

  describe('an open registry', () => {
    let reg: RunningOciRegistry;
    let image: OciImage;

    before(async () => {
      reg = await startOciRegistry();
      stops.push(() => reg.stop());
      image = await randomImage(src, { layerBytes: [400_000, 200_000, 50_000] });
    });

    it('pushes to several tags and two repositories, mounting the second from the first', async () => {
      const lines: string[] = [];
      const refs = ['epr/app:1', 'epr/app:latest', 'epr/copy:1'].map((r) => ref(reg.host, r));
      const report = await pushImage(image, src, refs, { onProgress: (l) => lines.push(l) });
      expect(report.blobsSent).to.equal(4);
      expect(report.blobsMounted).to.equal(4);
      expect(report.blobsPresent).to.equal(0);
      expect(report.bytesSent).to.equal(image.layers.reduce((n, l) => n + l.size, image.config.length));
      expect(report.manifestDigest).to.equal(sha256Digest(image.manifest));
      expect(report.references).to.deep.equal([`${reg.host}/epr/app:1`, `${reg.host}/epr/app:latest`, `${reg.host}/epr/copy:1`]);
      for (const [repo, tag] of [['epr/app', '1'], ['epr/app', 'latest'], ['epr/copy', '1']]) expect(registryManifestStatus(reg.host, repo, tag)).to.equal(200);
      expect(lines.filter((l) => l.startsWith(`${reg.host}/epr/app: blob sha256:`) && l.endsWith(' MB)')).map((l) => l.split(' ')[3])).to.have.members(Array(4).fill('uploaded'));
      expect(lines.filter((l) => l.includes('/epr/copy: blob ')).map((l) => l.split(' ')[3])).to.have.members(Array(4).fill('mounted'));
      expect(lines.at(-1)).to.match(/4 blobs uploaded .* 4 mounted, 0 already there/);
    });

    it('a re-push uploads nothing', async () => {
      const report = await pushImage(image, src, [ref(reg.host, 'epr/app:1'), ref(reg.host, 'epr/copy:1')]);
      expect(report).to.include({ blobsSent: 0, blobsMounted: 0, blobsPresent: 8, bytesSent: 0 });
    });

    it('pushes by digest, mounting from a named repository', async () => {
      const digest = image.manifestDescriptor.digest;
      const report = await pushImage(image, src, [ref(reg.host, `epr/pinned@${digest}`)], { mountFrom: [`${reg.host}/epr/app`] });
      expect(report).to.include({ blobsSent: 0, blobsMounted: 4 });
      expect(report.references).to.deep.equal([`${reg.host}/epr/pinned@${digest}`]);
      expect(registryManifestStatus(reg.host, 'epr/pinned', digest)).to.equal(200);
    });

    it('finds manifests by tag and digest, and nothing where there is nothing', async () => {
      const d = await headManifest(ref(reg.host, 'epr/app:1'));
      expect(d).to.deep.equal({ mediaType: MEDIA_TYPES.ociManifest, digest: image.manifestDescriptor.digest, size: image.manifest.length });
      const m = await getManifest(ref(reg.host, `epr/app@${image.manifestDescriptor.digest}`));
      expect(m?.bytes.equals(image.manifest)).to.equal(true);
      expect(await headManifest(ref(reg.host, 'epr/app:nope'))).to.equal(undefined);
      expect(await getManifest(ref(reg.host, 'epr/never-pushed:1'))).to.equal(undefined);
      const client = new RegistryClient(reg.host);
      expect(await client.blobExists('epr/app', image.layers[0].digest)).to.equal(true);
      expect(await client.blobExists('epr/app', sha256Digest('nothing'))).to.equal(false);
    });

    it('pulls the image byte for byte, and fetches nothing it holds', async () => {
      const dst = new DirBlobs(path.join(work, 'pulled'));
      const pulled = await pullImage(ref(reg.host, 'epr/copy:1'), dst);
      expectSameImage(pulled, image, src, dst);
      expect(dst.has(image.manifestDescriptor.digest) && dst.has(image.configDescriptor.digest)).to.equal(true);
      const before = dst.written.length;
      await pullImage(ref(reg.host, `epr/app@${image.manifestDescriptor.digest}`), dst);
      expect(dst.written.length).to.equal(before);
    });

    it('skopeo reads what was pushed', () => {
      const inspect = spawnSync('skopeo', ['inspect', '--tls-verify=false', `docker://${reg.host}/epr/app:1`], { encoding: 'utf8', timeout: 60_000 });
      expect(inspect.status, inspect.stderr).to.equal(0);
      const info = JSON.parse(inspect.stdout) as { Digest: string; Layers: string[] };
      expect(info.Digest).to.equal(image.manifestDescriptor.digest);
      expect(info.Layers).to.deep.equal(image.layers.map((l) => l.digest));
      const layout = path.join(work, 'skopeo-layout');
      const copy = spawnSync('skopeo', ['copy', '--src-tls-verify=false', `docker://${reg.host}/epr/copy:1`, `oci:${layout}:copy`], { encoding: 'utf8', timeout: 60_000 });
      expect(copy.status, copy.stderr).to.equal(0);
      for (const d of [image.manifestDescriptor.digest, image.configDescriptor.digest, ...image.layers.map((l) => l.digest)]) {
        expect(fs.readFileSync(path.join(layout, 'blobs', 'sha256', d.slice(7))).equals(src.read(d)), d).to.equal(true);
      }
    });

    it('pulls a Docker v2 image through an index, for linux/amd64', async () => {
      const docker = await randomImage(src, { layerBytes: [20_000], base: image, mediaType: 'docker' });
      await pushImage(docker, src, [ref(reg.host, 'epr/docker:1')]);
      // an index names manifests of its own repository
      await pushImage(image, src, [ref(reg.host, `epr/docker@${image.manifestDescriptor.digest}`)]);
      const index = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MEDIA_TYPES.ociIndex,
          manifests: [
            { ...image.manifestDescriptor, platform: { os: 'linux', architecture: 'arm64' } },
            { ...docker.manifestDescriptor, platform: { os: 'linux', architecture: 'amd64' } },
          ],
        }),
      );
      const client = new RegistryClient(reg.host);
      await client.putManifest('epr/docker', 'multi', index, MEDIA_TYPES.ociIndex);
      const dst = new DirBlobs(path.join(work, 'pulled-docker'));
      const pulled = await pullImage(ref(reg.host, 'epr/docker:multi'), dst, { platform: { os: 'linux', architecture: 'amd64' } });
      expect(pulled.manifestDescriptor.mediaType).to.equal(MEDIA_TYPES.dockerManifest);
      expectSameImage(pulled, docker, src, dst);
      const err = await rejection(pullImage(ref(reg.host, 'epr/docker:multi'), dst, { platform: { os: 'linux', architecture: 's390x' } }));
      expect(err.message).to.equal(`${reg.host}/epr/docker:multi: the index has no image for linux/s390x (it has linux/arm64, linux/amd64)`);
    });

    it("a registry's refusal fails at once, in its own words, with no tag moved", async () => {
      const client = new RegistryClient(reg.host, { retry: { attempts: 5, baseDelayMs: 2_000 } });
      const orphan = await randomImage(src, { layerBytes: [1_000] });
      const started = Date.now();
      const err = await rejection(client.putManifest('epr/orphan', '1', orphan.manifest, orphan.manifestDescriptor.mediaType));
      expect(Date.now() - started).to.be.below(1_500);
      expect(err).to.be.instanceOf(RegistryError);
      expect(err.message).to.match(new RegExp(`^${reg.host}/epr/orphan: pushing the manifest for tag 1: the registry answered 400 MANIFEST_BLOB_UNKNOWN: blob unknown to registry`));
      expect(err.message).to.not.include('\n');

      // a blob neither here nor in the registry: found before any manifest is written
      const partial = new DirBlobs(path.join(work, 'partial'));
      partial.put(orphan.config);
      const err2 = await rejection(pushImage(orphan, partial, [ref(reg.host, 'epr/orphan:2')]));
      expect(err2.message).to.include(`${reg.host}/epr/orphan: blob ${orphan.layers[0].digest} is neither in the registry nor in the local store`);
      expect(registryManifestStatus(reg.host, 'epr/orphan', '2')).to.equal(404);
    });
  });

  describe('faults between the client and the registry', () => {
    let reg: RunningOciRegistry;
    let proxy: FaultProxy;
    const fast: RegistryOptions = { timeoutMs: 1_500, retry: { attempts: 4, baseDelayMs: 100, maxDelayMs: 2_000 } };

    before(async () => {
      reg = await startOciRegistry();
      stops.push(() => reg.stop());
      proxy = await startFaultProxy(reg.host);
      stops.push(() => proxy.close());
    });
    beforeEach(() => proxy.setFaults([]));

    it('500 to the first three requests: retried, then pushed', async () => {
      const image = await randomImage(src, { layerBytes: [100_000, 10_000] });
      proxy.setFaults([{ kind: 'status', status: 500, times: 3 }]);
      const lines: string[] = [];
      const report = await pushImage(image, src, [ref(proxy.host, 'faults/five:1')], { ...fast, onProgress: (l) => lines.push(l) });
      expect(proxy.fired).to.include.members(['500']);
      expect(report.blobsSent).to.equal(3);
      expect(lines.filter((l) => /500 UNKNOWN: injected 500; retry/.test(l))).to.have.length(3);
      expect(registryManifestStatus(reg.host, 'faults/five', '1')).to.equal(200);
    });

    it('429 with Retry-After: waits as asked, then pushes', async () => {
      const image = await randomImage(src, { layerBytes: [10_000] });
      proxy.setFaults([{ kind: 'status', status: 429, times: 2, retryAfter: '1', match: isBlobUpload }]);
      const started = Date.now();
      await pushImage(image, src, [ref(proxy.host, 'faults/slow:1')], { ...fast, concurrency: 1 });
      expect(Date.now() - started).to.be.at.least(1_900);
      expect(registryManifestStatus(reg.host, 'faults/slow', '1')).to.equal(200);
    });

    it('a connection dropped mid-blob: the blob is sent again from its start', async () => {
      const image = await randomImage(src, { layerBytes: [600_000] });
      proxy.setFaults([{ kind: 'drop', side: 'request', afterBytes: 200_000, times: 1, match: (m, u) => isBlobUpload(m, u) && u.includes(image.layers[0].digest.slice(7)) }]);
      const report = await pushImage(image, src, [ref(proxy.host, 'faults/drop:1')], fast);
      expect(proxy.fired).to.deep.equal(['drop']);
      expect(report.blobsSent).to.equal(2);
      const dst = new DirBlobs(path.join(work, 'pulled-drop'));
      expectSameImage(await pullImage(ref(reg.host, 'faults/drop:1'), dst), image, src, dst);
    });

    it('a download dropped mid-blob: pulled again and checked', async () => {
      const image = await randomImage(src, { layerBytes: [500_000] });
      await pushImage(image, src, [ref(reg.host, 'faults/pull:1')]);
      proxy.setFaults([{ kind: 'drop', side: 'response', afterBytes: 100_000, times: 1, match: isBlobDownload }]);
      const dst = new DirBlobs(path.join(work, 'pulled-dropped'));
      const pulled = await pullImage(ref(proxy.host, 'faults/pull:1'), dst, fast);
      expect(proxy.fired).to.deep.equal(['drop']);
      expectSameImage(pulled, image, src, dst);
    });

    it('a stalled upload fails with a clear message and moves no tag; the rerun sends only what is missing', async () => {
      const image = await randomImage(src, { layerBytes: [800_000, 20_000, 10_000] });
      const big = image.layers[0].digest.slice(7);
      proxy.setFaults([{ kind: 'stall', afterBytes: 100_000, times: 99, match: (m, u) => isBlobUpload(m, u) && u.includes(big) }]);
      const target = ref(proxy.host, 'faults/stall:1');
      const err = await rejection(pushImage(image, src, [target], { ...fast, retry: { attempts: 2, baseDelayMs: 100 } }));
      expect(err).to.be.instanceOf(RegistryError);
      expect(err.message).to.equal(`${proxy.host}/faults/stall: uploading blob ${image.layers[0].digest.slice(0, 19)}: gave up after 2 tries: ${proxy.host} stalled: nothing sent or received for 2 s`);
      expect(registryManifestStatus(reg.host, 'faults/stall', '1')).to.equal(404);

      proxy.setFaults([]);
      const report = await pushImage(image, src, [target], fast);
      expect(report).to.include({ blobsSent: 1, blobsPresent: 3 });
      expect(registryManifestStatus(reg.host, 'faults/stall', '1')).to.equal(200);
    });

    it('a registry that keeps failing: gives up within the bounds, no tag moved', async () => {
      const image = await randomImage(src, { layerBytes: [10_000] });
      proxy.setFaults([{ kind: 'status', status: 503, times: 1_000, match: isBlobUpload }]);
      const err = await rejection(pushImage(image, src, [ref(proxy.host, 'faults/down:1')], { ...fast, retry: { attempts: 3, baseDelayMs: 50 } }));
      expect(err.message).to.match(new RegExp(`^${proxy.host}/faults/down: uploading blob sha256:[0-9a-f]{12}: gave up after 3 tries: 503 UNKNOWN: injected 503$`));
      expect(registryManifestStatus(reg.host, 'faults/down', '1')).to.equal(404);
    });
  });

  describe('https with a self-signed certificate', () => {
    let reg: RunningOciRegistry;
    before(async () => {
      reg = await startTlsRegistry(tmpDir('epr-oci-tls-'));
      stops.push(() => reg.stop());
    });

    it('is refused unless the registry is named insecure; then pushes and pulls', async () => {
      const image = await randomImage(src, { layerBytes: [20_000] });
      const err = await rejection(headManifest(ref(reg.host, 'tls/app:1')));
      expect(err.message).to.match(new RegExp(`^TLS with ${reg.host} failed: self[- ]signed certificate`));
      const opts = { insecureRegistries: [reg.host] };
      expect((await pushImage(image, src, [ref(reg.host, 'tls/app:1')], opts)).blobsSent).to.equal(2);
      const dst = new DirBlobs(path.join(work, 'pulled-tls'));
      expectSameImage(await pullImage(ref(reg.host, 'tls/app:1'), dst, opts), image, src, dst);
    });

    it('a registry where nothing listens fails at once', async () => {
      const port = await freeTcpPort();
      const started = Date.now();
      const err = await rejection(headManifest(ref(`127.0.0.1:${port}`, 'x/y:1')));
      expect(err.message).to.equal(`cannot connect to 127.0.0.1:${port}: connection refused`);
      expect(Date.now() - started).to.be.below(1_000);
    });
  });

  describe('basic auth (htpasswd)', () => {
    let reg: RunningOciRegistry;
    let image: OciImage;
    let configDir = '';

    before(async () => {
      const dir = tmpDir('epr-oci-basic-');
      reg = await startOciRegistry(writeHtpasswd(dir, 'builder', 's3cret'));
      stops.push(() => reg.stop());
      image = await randomImage(src, { layerBytes: [30_000] });
      configDir = path.join(dir, 'docker');
      fs.mkdirSync(configDir);
    });

    it('pushes with explicit credentials', async () => {
      const report = await pushImage(image, src, [ref(reg.host, 'basic/app:1')], { credentials: { username: 'builder', password: 's3cret' } });
      expect(report.blobsSent).to.equal(2);
    });

    it("pulls with the credentials of Docker's config.json (auths)", async () => {
      const file = path.join(configDir, 'config.json');
      fs.writeFileSync(file, JSON.stringify({ auths: { [`https://${reg.host}/v1/`]: { auth: Buffer.from('builder:s3cret').toString('base64') } } }));
      const dst = new DirBlobs(path.join(work, 'pulled-basic'));
      const pulled = await pullImage(ref(reg.host, 'basic/app:1'), dst, { credentialLookup: { configPath: file } });
      expectSameImage(pulled, image, src, dst);
    });

    it('asks a credential helper (credHelpers) through the docker-credential protocol', async () => {
      const bin = path.join(configDir, 'bin');
      fs.mkdirSync(bin, { recursive: true });
      const log = path.join(configDir, 'helper.log');
      fs.writeFileSync(
        path.join(bin, 'docker-credential-epr-test'),
        `#!/bin/sh\nread host\necho "$1 $host" >> ${log}\n[ "$host" = "${reg.host}" ] || { echo "credentials not found in native keychain"; exit 1; }\necho '{"ServerURL":"'$host'","Username":"builder","Secret":"s3cret"}'\n`,
        { mode: 0o755 },
      );
      const file = path.join(configDir, 'config-helper.json');
      fs.writeFileSync(file, JSON.stringify({ credHelpers: { [reg.host]: 'epr-test' } }));
      const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
      const headed = await headManifest(ref(reg.host, 'basic/app:1'), { credentialLookup: { configPath: file, env } });
      expect(headed?.digest).to.equal(image.manifestDescriptor.digest);
      expect(fs.readFileSync(log, 'utf8').trim()).to.equal(`get ${reg.host}`);
    });

    it('without credentials, or with wrong ones: a clear error', async () => {
      const none = await rejection(pushImage(image, src, [ref(reg.host, 'basic/app:2')], { credentials: null }));
      expect(none.message).to.match(/^[^ ]+\/basic\/app: looking up blob sha256:[0-9a-f]{12}: the registry requires authentication and there are no credentials for [^ ]+ \(`docker login [^ ]+`, or without Docker `skopeo login --authfile ~\/\.docker\/config\.json [^ ]+`; DOCKER_CONFIG names another folder\): 401$/);
      const wrong = await rejection(headManifest(ref(reg.host, 'basic/app:1'), { credentials: { username: 'builder', password: 'nope' } }));
      expect(wrong.message).to.equal(`${reg.host}/basic/app: looking up 1: the registry refused user "builder" from the given credentials: 401`);
      expect(registryManifestStatus(reg.host, 'basic/app', '2')).to.equal(401);
    });
  });

  describe('token auth (Bearer challenge)', () => {
    let tokens: TokenService;
    let reg: RunningOciRegistry;
    let image: OciImage;
    const credentials = { username: 'ci', password: 'token-pass' };

    before(async () => {
      const dir = tmpDir('epr-oci-token-');
      tokens = await startTokenService({ dir, user: credentials.username, password: credentials.password, refreshToken: 'ci-refresh' });
      stops.push(() => tokens.close());
      reg = await startTokenRegistry(dir, { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.certPath });
      stops.push(() => reg.stop());
      image = await randomImage(src, { layerBytes: [50_000, 5_000] });
    });

    it('pushes with a token per scope set, mounting with pull on the source repository', async () => {
      const report = await pushImage(image, src, [ref(reg.host, 'tok/one:1'), ref(reg.host, 'tok/two:1')], { credentials });
      expect(report).to.include({ blobsSent: 3, blobsMounted: 3 });
      expect(tokens.requests.every((r) => r.user === 'ci' && r.service === 'test-registry')).to.equal(true);
      expect(tokens.requests.map((r) => r.scopes.sort().join(' '))).to.include.members(['repository:tok/one:pull,push', 'repository:tok/one:pull repository:tok/two:pull,push']);
      // one token per scope set, not one per request
      expect(tokens.requests.length).to.be.below(6);
    });

    it('pulls with a token', async () => {
      const dst = new DirBlobs(path.join(work, 'pulled-token'));
      expectSameImage(await pullImage(ref(reg.host, 'tok/two:1'), dst, { credentials }), image, src, dst);
    });

    it('exchanges an identity token (OAuth2 refresh token) for access', async () => {
      const d = await headManifest(ref(reg.host, 'tok/one:1'), { credentials: { username: '', password: '', identityToken: 'ci-refresh' } });
      expect(d?.digest).to.equal(image.manifestDescriptor.digest);
      expect(tokens.requests.at(-1)).to.deep.equal({ user: 'ci', service: 'test-registry', scopes: ['repository:tok/one:pull'] });
    });

    it('anonymous access the token service does not grant: a clear error', async () => {
      const err = await rejection(getManifest(ref(reg.host, 'tok/one:1'), { credentials: null }));
      expect(err.message).to.match(new RegExp(`^${reg.host}/tok/one: reading the manifest 1: the registry requires authentication and there are no credentials for ${reg.host} .*: 401 UNAUTHORIZED: authentication required`));
    });
  });
});
