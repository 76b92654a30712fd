/**
 * Bundles against the real readers: a small image on the real base (the
 * node:20 stand-in, copied from the classic engine into a builder store) is
 * written as a full bundle and, after one changed layer, as an incremental
 * one, then read by `load` on the classic engine and on the containerd image
 * store engine, by skopeo (oci-archive:), by a standalone containerd as on a
 * Kubernetes node (`ctr images import`), by podman when it runs here, and
 * pushed by `load --to-registry` into a real registry with no engine. An
 * incremental bundle without the earlier image fails naming what is missing.
 *
 * Every image is in the repository epr-bundle-test and removed at the end.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { expect } from 'chai';
import Docker from 'dockerode';
import { engine, ensureEngine, inspectImage, untag } from '../../builder/image.js';
import { OciStore } from '../../builder/oci/store.js';
import { importFromEngine } from '../../builder/oci/engine.js';
import { readBundle, sinceSet, writeBundle, type BundleReport } from '../../builder/oci/bundle.js';
import { writeTar, type TarEntry } from '../../builder/tar.js';
import { LABEL_PREFIX } from '../../builder/tags.js';
import type { LayerDescriptor, OciImage } from '../../builder/oci/model.js';
import { cleanupTmp, tmpDir } from '../helpers/fixtures.js';
import { PROJECT_ROOT } from '../helpers/server.js';
import { cli, freePort, sh } from '../helpers/builder-cli.js';

const SHARED_CI = path.join(PROJECT_ROOT, '..', 'shared', 'ci');
const CONTAINERD_SOCKET = '/run/docker-containerd.sock';
const REPO = 'epr-bundle-test';
const BASE = 'node:20-bookworm-slim';

/** A stand-in for a distribution: labels a load checks, and a server answering /health and /search. */
const SERVER = `const http = require('http');
const version = require('fs').readFileSync('/srv/version', 'utf8').trim();
http.createServer((req, res) => {
  if (req.url === '/health') { res.end('ok'); return; }
  if (req.url.startsWith('/search')) { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify([{ name: 'bundle_test', version }])); return; }
  res.statusCode = 404; res.end();
}).listen(8080, '0.0.0.0');
`;

async function layer(store: OciStore, files: Record<string, string>): Promise<LayerDescriptor> {
  const entries: TarEntry[] = [{ name: 'srv', type: 'directory' }];
  for (const [name, text] of Object.entries(files)) entries.push({ name, type: 'file', size: Buffer.byteLength(text), data: Buffer.from(text) });
  return store.writeLayer((write) => writeTar(entries, write));
}

function appImage(store: OciStore, base: OciImage, layers: LayerDescriptor[], version: string): OciImage {
  const cfg = JSON.parse(base.config.toString('utf8')) as { config?: Record<string, unknown>; history?: unknown[]; rootfs: { diff_ids: string[] } };
  const labels = {
    [`${LABEL_PREFIX}.distribution`]: 'bundle-test', [`${LABEL_PREFIX}.commit`]: `commit-${version}`, [`${LABEL_PREFIX}.version`]: version,
    [`${LABEL_PREFIX}.package-count`]: '1', [`${LABEL_PREFIX}.packages-digest`]: `sha256:${version.repeat(64).slice(0, 64)}`,
  };
  const config = {
    ...cfg,
    created: '2024-01-01T00:00:00Z',
    config: { ...(cfg.config ?? {}), Cmd: ['node', '/srv/server.js'], ExposedPorts: { '8080/tcp': {} }, Labels: labels },
    rootfs: { type: 'layers', diff_ids: [...cfg.rootfs.diff_ids, ...layers.map((l) => l.diffId)] },
    history: [...(cfg.history ?? []), ...layers.map((_, i) => ({ created: '2024-01-01T00:00:00Z', created_by: `epr bundle test layer ${i + 1}` }))],
  };
  return store.putImage(Buffer.from(JSON.stringify(config)), [...base.layers, ...layers]);
}

const digestHexOf = (d: string) => d.slice('sha256:'.length);

function run(cmd: string, args: string[], env: Record<string, string> = {}, timeoutMs = 300_000) {
  return spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, ...env } });
}

/** Runs `cat file` in the image with no network, through the docker CLI of the engine `env` names. */
function catIn(image: string, file: string, env: Record<string, string> = {}): string {
  const r = run('docker', ['run', '--rm', '--network', 'none', image, 'cat', file], env);
  expect(r.status, r.stderr).to.equal(0);
  return r.stdout.trim();
}

describe('bundles on every reader (engines, containerd, skopeo, podman, registry)', function () {
  this.timeout(900_000);
  const classic = engine();
  const cd = new Docker({ socketPath: CONTAINERD_SOCKET });
  const cdEnv = { DOCKER_HOST: `unix://${CONTAINERD_SOCKET}` };
  const noEngine = { DOCKER_HOST: 'unix:///nonexistent/docker.sock' };
  let dir = '';
  let store: OciStore;
  let v1: OciImage;
  let v2: OciImage;
  let app: LayerDescriptor;
  let baseImage: OciImage;
  let fullV1 = '';
  let both = '';
  let update = '';
  let updateReport: BundleReport;
  let fullV2Report: BundleReport;
  let ctrAddress = '';
  let registryPid: number | undefined;
  let port = 0;

  before(async () => {
    await ensureEngine(classic);
    sh('bash', [path.join(SHARED_CI, 'node-base-image.sh')]);
    dir = tmpDir('epr-bundle-it-');
    store = OciStore.open(path.join(dir, 'store'));
    baseImage = await importFromEngine(classic, BASE, store);
    app = await layer(store, { 'srv/server.js': SERVER });
    v1 = appImage(store, baseImage, [app, await layer(store, { 'srv/version': '1\n' })], '1');
    v2 = appImage(store, baseImage, [app, await layer(store, { 'srv/version': '2\n', 'srv/changed': 'the one changed layer\n' })], '2');
    fullV1 = path.join(dir, 'epr-v1.tar');
    both = path.join(dir, 'epr-both.tar');
    update = path.join(dir, 'epr-update.tar');
    await writeBundle(fullV1, [{ image: v1, tags: [`${REPO}:v1`] }], store);
    await writeBundle(both, [{ image: v1, tags: [`${REPO}:v1`] }, { image: v2, tags: [`${REPO}:v2`, `${REPO}:latest`] }], store);
    updateReport = await writeBundle(update, [{ image: v2, tags: [`${REPO}:v2`] }], store, { since: [await sinceSet(fullV1)] });
    fullV2Report = await writeBundle(path.join(dir, 'epr-v2.tar'), [{ image: v2, tags: [`${REPO}:v2`] }], store);
    const up = run('bash', [path.join(SHARED_CI, 'containerd-up.sh')], {}, 600_000);
    if (up.status !== 0) throw new Error(`containerd-up.sh failed: ${up.stderr}`);
    ctrAddress = /CTR_ADDRESS=(\S+)/.exec(up.stdout)![1];
  });

  after(async () => {
    for (const d of [classic, cd]) for (const t of ['v1', 'v2', 'latest']) await untag(d, `${REPO}:${t}`).catch(() => undefined);
    if (ctrAddress) for (const t of ['v1', 'v2', 'latest']) run('ctr', ['-a', ctrAddress, '-n', 'k8s.io', 'images', 'rm', `docker.io/library/${REPO}:${t}`]);
    if (run('podman', ['--version']).status === 0) for (const t of ['v1', 'v2', 'latest']) for (const p of ['localhost', 'docker.io/library']) run('podman', ['rmi', '-f', `${p}/${REPO}:${t}`]);
    if (registryPid) try { process.kill(registryPid); } catch { /* gone */ }
    cleanupTmp();
  });

  it('the incremental bundle after one changed layer is small against the full one', () => {
    // figures for the report: the base stand-in is ~120 MB, the changed layer a few hundred bytes
    process.stdout.write(`      full v2 bundle ${(fullV2Report.bytes / 1e6).toFixed(1)} MB, update ${(updateReport.bytes / 1e3).toFixed(1)} kB (${updateReport.blobsWritten} blobs, ${updateReport.blobsLeftOut} left out)\n`);
    expect(updateReport.incremental).to.equal(true);
    expect(updateReport.blobsLeftOut).to.equal(baseImage.layers.length + 1);
    expect(updateReport.bytes).to.be.below(fullV2Report.bytes / 10);
    expect(updateReport.fullBytes).to.be.within(fullV2Report.bytes - 4096, fullV2Report.bytes + 4096);
  });

  describe('the classic engine', () => {
    it('load: a full bundle loads, checks its labels, /health and /search; the image runs', async () => {
      const r = await cli(['load', fullV1, '--json']);
      expect(r.code, r.stderr).to.equal(0);
      const j = JSON.parse(r.stdout) as { engine: { store: string }; bundle: { incremental: boolean }; images: Array<{ refs: string[]; searched: number }> };
      expect(j.engine.store).to.equal('classic');
      expect(j.bundle.incremental).to.equal(false);
      expect(j.images[0]).to.include({ searched: 1 });
      expect(j.images[0].refs).to.deep.equal([`${REPO}:v1`]);
      expect((await inspectImage(classic, `${REPO}:v1`))!.Id).to.equal(v1.configDescriptor.digest);
      expect(catIn(`${REPO}:v1`, '/srv/version')).to.equal('1');
    });

    it('--since an image in the engine: the layers of the new image the engine holds by content', async () => {
      const s = await sinceSet(`${REPO}:v1`, { docker: classic, store, images: [v2] });
      expect(s.from).to.equal('engine');
      expect([...s.digests]).to.have.members([...baseImage.layers, app].map((l) => l.digest));
      expect(s.images[0].manifest).to.equal(v1.configDescriptor.digest);
    });

    it('load: the incremental bundle loads on top of the earlier image and says its size against the full one', async () => {
      const r = await cli(['load', update]);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.match(/bundle .*epr-update\.tar: [\d.]+ kB for 1 image\(s\) of [\d.]+ MB \([\d.]+% of it\), incremental: 3 blobs inside, \d+ layer\(s\) left out .* that the engine holds/);
      expect(r.stdout).to.match(/loaded bundle-test into the classic layer store: sha256:\w+ \(epr-bundle-test:v2\): \/health ok, \/search lists 1 packages/);
      expect(catIn(`${REPO}:v2`, '/srv/changed')).to.equal('the one changed layer');
    });

    it('load: without the earlier image, the incremental bundle names the layers the engine lacks and loads nothing', async () => {
      for (const t of ['v1', 'v2']) await untag(classic, `${REPO}:${t}`);
      const r = await cli(['load', update]);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.match(/error: .*epr-update\.tar is an incremental bundle: the engine \(the classic layer store\) lacks 1 layer\(s\) it left out; nothing was loaded/);
      // the base layers are in the engine (the base image holds their chain); the app layer only came with v1
      expect(r.stderr).to.contain(app.digest);
      expect(r.stderr).to.contain(`it came with ${REPO}:v1 from ${fullV1}`);
      for (const l of baseImage.layers) expect(r.stderr).to.not.contain(l.digest);
      expect(r.stderr).to.not.match(/\n\s+at /);
      expect(await inspectImage(classic, `${REPO}:v2`)).to.equal(undefined);
    });
  });

  describe('the containerd image store engine', () => {
    before(function () {
      const up = run('bash', [path.join(SHARED_CI, 'docker-containerd-up.sh')], {}, 600_000);
      if (up.status !== 0) throw new Error(`docker-containerd-up.sh failed: ${up.stderr}`);
    });

    it('load: a full bundle loads and runs', async () => {
      const r = await cli(['load', fullV1, '--json'], cdEnv);
      expect(r.code, r.stderr).to.equal(0);
      expect((JSON.parse(r.stdout) as { engine: { store: string } }).engine.store).to.equal('containerd');
      // the containerd store names an image by its manifest digest
      expect((await inspectImage(cd, `${REPO}:v1`))!.Id).to.equal(v1.manifestDescriptor.digest);
      expect(catIn(`${REPO}:v1`, '/srv/version', cdEnv)).to.equal('1');
    });

    it('a docker save of this engine (an OCI layout) reads back as a bundle of the same image', async () => {
      const saved = path.join(dir, 'cd-saved.tar');
      const r = run('docker', ['save', '-o', saved, `${REPO}:v1`], cdEnv);
      expect(r.status, r.stderr).to.equal(0);
      const b = readBundle(saved);
      expect(b.images.map((i) => [i.image.manifestDescriptor.digest, i.tags])).to.deep.equal([[v1.manifestDescriptor.digest, [`${REPO}:v1`]]]);
      expect(b.incremental).to.equal(false);
    });

    it('load: the incremental bundle loads on top of the earlier image', async () => {
      const r = await cli(['load', update], cdEnv);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.match(/loaded bundle-test into the containerd image store/);
      expect(catIn(`${REPO}:v2`, '/srv/changed', cdEnv)).to.equal('the one changed layer');
    });

    it('load: without the earlier image, the incremental bundle names every blob the engine lacks', async () => {
      for (const t of ['v1', 'v2']) await untag(cd, `${REPO}:${t}`);
      const r = await cli(['load', update], cdEnv);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.match(/the engine \(the containerd image store\) lacks \d+ layer\(s\) it left out; nothing was loaded/);
      for (const l of [...baseImage.layers, app]) expect(r.stderr).to.contain(l.digest);
      expect(await inspectImage(cd, `${REPO}:v2`)).to.equal(undefined);
    });
  });

  it('skopeo reads the bundle as an OCI archive, by tag', () => {
    const inspect = run('skopeo', ['inspect', `oci-archive:${both}:v2`]);
    expect(inspect.status, inspect.stderr).to.equal(0);
    const info = JSON.parse(inspect.stdout) as { Digest: string; Labels: Record<string, string>; Layers: string[] };
    expect(info.Digest).to.equal(v2.manifestDescriptor.digest);
    expect(info.Labels[`${LABEL_PREFIX}.version`]).to.equal('2');
    expect(info.Layers).to.deep.equal(v2.layers.map((l) => l.digest));
    const out = path.join(dir, 'skopeo-v1');
    const copy = run('skopeo', ['copy', `oci-archive:${both}:v1`, `dir:${out}`]);
    expect(copy.status, copy.stderr).to.equal(0);
    for (const l of v1.layers) expect(fs.existsSync(path.join(out, l.digest.slice(7)))).to.equal(true);
  });

  it('a standalone containerd (as on a Kubernetes node) imports the full bundle, then the incremental one on top, and runs it', function () {
    const ctr = (...args: string[]) => run('ctr', ['-a', ctrAddress, '-n', 'k8s.io', ...args]);
    let r = ctr('images', 'import', fullV1);
    expect(r.status, r.stderr).to.equal(0);
    r = ctr('images', 'import', update);
    expect(r.status, r.stderr).to.equal(0);
    const ls = ctr('images', 'ls');
    expect(ls.stdout).to.contain(`docker.io/library/${REPO}:v1`).and.contain(`docker.io/library/${REPO}:v2`);
    expect(ls.stdout).to.contain(v2.manifestDescriptor.digest);
    const cat = ctr('run', '--rm', `docker.io/library/${REPO}:v2`, `epr-bundle-test-${process.pid}`, 'cat', '/srv/changed');
    expect(cat.status, cat.stderr).to.equal(0);
    expect(cat.stdout.trim()).to.equal('the one changed layer');

    // in a namespace that never had v1, the left-out blobs are not there: the import fails (leaving the
    // image's name behind, pointing at nothing: `load` checks first for that reason)
    const ns = `epr-bundle-empty-${process.pid}`;
    const inNs = (...args: string[]) => run('ctr', ['-a', ctrAddress, '-n', ns, ...args]);
    const empty = inNs('images', 'import', update);
    expect(empty.status).to.not.equal(0);
    expect(empty.stderr).to.match(/not found/);
    const names = inNs('images', 'ls', '-q').stdout.trim().split('\n').filter(Boolean);
    if (names.length) inNs('images', 'rm', ...names);
    const blobs = inNs('content', 'ls', '-q').stdout.trim().split('\n').filter(Boolean);
    if (blobs.length) inNs('content', 'rm', ...blobs);
    run('ctr', ['-a', ctrAddress, 'namespaces', 'rm', ns]);
  });

  it('podman loads the full bundle (when podman runs here)', function () {
    const info = run('podman', ['info', '--format', '{{.Store.GraphDriverName}}']);
    if (info.status !== 0) {
      process.stdout.write(`      skipped: podman cannot run here (${(info.stderr || info.error?.message || '').trim().split('\n')[0]})\n`);
      this.skip();
    }
    const r = run('podman', ['load', '-i', both]);
    expect(r.status, r.stderr).to.equal(0);
    const images = run('podman', ['images', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}']);
    // podman reads a bundle of several images as a docker archive, whose short names it puts under localhost/
    for (const [t, img] of [['v1', v1], ['v2', v2], ['latest', v2]] as const) {
      expect(images.stdout).to.match(new RegExp(`^(localhost|docker\\.io/library)/${REPO}:${t} ${digestHexOf(img.configDescriptor.digest).slice(0, 12)}$`, 'm'));
    }
    // --pull=never: a name it lacks must not send podman to a registry
    const cat = run('podman', ['run', '--rm', '--pull=never', '--network', 'none', `${REPO}:v1`, 'cat', '/srv/version']);
    if (cat.status === 0) expect(cat.stdout.trim()).to.equal('1');
    else process.stdout.write(`      podman loaded the bundle but cannot run containers here (${cat.stderr.trim().split('\n').pop()})\n`);
  });

  describe('load --to-registry, with no engine', () => {
    before(async () => {
      port = await freePort();
      registryPid = Number(sh('bash', [path.join(SHARED_CI, 'registry-up.sh'), String(port)], 120_000).split('\n').pop());
    });

    it('pushes a full bundle, then only what the incremental one carries', async () => {
      const dest = `127.0.0.1:${port}/${REPO}`;
      let r = await cli(['load', fullV1, '--to-registry', dest, '--json'], noEngine);
      expect(r.code, r.stderr).to.equal(0);
      const first = JSON.parse(r.stdout) as { pushed: Array<{ references: string[]; blobsSent: number; blobsPresent: number }> };
      expect(first.pushed[0].references).to.deep.equal([`${dest}:v1`]);
      expect(first.pushed[0].blobsSent).to.equal(v1.layers.length + 1);

      r = await cli(['load', update, '--to-registry', dest], noEngine);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.match(/incremental: 3 blobs inside, \d+ layer\(s\) left out .* that the registry holds/);
      expect(r.stdout).to.match(/pushed sha256:\w+ to .*epr-bundle-test:v2: 2 blobs uploaded .*, 0 mounted, \d+ already there/);
      const since = await sinceSet(`${dest}:v1`);
      expect(since.from).to.equal('registry');
      expect([...since.digests]).to.deep.equal(v1.layers.map((l) => l.digest));
      const inspect = run('skopeo', ['inspect', '--tls-verify=false', `docker://${dest}:v2`]);
      expect(inspect.status, inspect.stderr).to.equal(0);
      expect((JSON.parse(inspect.stdout) as { Digest: string }).Digest).to.equal(v2.manifestDescriptor.digest);
    });

    it('a host alone keeps each image repository; a repository lacking the left-out layers is named, and no tag moves', async () => {
      let r = await cli(['load', both, '--to-registry', `127.0.0.1:${port}`], noEngine);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.contain(`127.0.0.1:${port}/library/${REPO}:v2`);

      r = await cli(['load', update, '--to-registry', `127.0.0.1:${port}/epr-bundle-test-empty`], noEngine);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.match(/lacks \d+ layer\(s\) it left out; nothing was loaded \(load what it was made since first: .*epr-v1\.tar\)/);
      for (const l of [...baseImage.layers, app]) expect(r.stderr).to.contain(l.digest);
      const tags = await fetch(`http://127.0.0.1:${port}/v2/epr-bundle-test-empty/tags/list`);
      expect(tags.status).to.equal(404);
    });

    it('refuses a plain docker save archive and a bad target with one clear line', async () => {
      const saved = path.join(dir, 'saved.tar');
      sh('docker', ['save', '-o', saved, BASE]);
      let r = await cli(['load', saved, '--to-registry', `127.0.0.1:${port}/x`], noEngine);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.match(/^error: .*saved\.tar is a docker archive without an OCI layout/);
      r = await cli(['load', update, '--to-registry', `127.0.0.1:${port}/x:tag`], noEngine);
      expect(r.code).to.equal(2);
      expect(r.stderr).to.match(/^error: --to-registry wants a repository without a tag/);
      expect(readBundle(update).incremental).to.equal(true);
    });
  });
});
