/**
 * The builder on every kind of place an image lives: a Docker engine with
 * the containerd image store (Docker 26, its own socket), no engine at all
 * (`--no-engine`: the base from the registry or an OCI layout, the check
 * in-process, the push straight from the store), and the classic engine
 * pulling what that push wrote. Real engines and a real registry on
 * 127.0.0.1; skopeo reads what the builder wrote.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { expect } from 'chai';
import Docker from 'dockerode';
import { engine, ensureEngine, inspectImage, pullImage, removeContainer, runImage, untag, waitForHttp } from '../../builder/image.js';
import { cleanupTmp, tmpDir, writeDirPackage } from '../helpers/fixtures.js';
import { PROJECT_ROOT } from '../helpers/server.js';
import { cli, freePort, sh } from '../helpers/builder-cli.js';

const SHARED_CI = path.join(PROJECT_ROOT, '..', 'shared', 'ci');
const CONTAINERD_SOCKET = '/run/docker-containerd.sock';

interface Summary {
  image: string; digest: string; tags: string[]; packages: number; check: string; commit: string;
  engine?: { store: string; path: string; blobsSent: number; blobsPresent: number };
  push?: { blobsSent: number; blobsPresent: number; manifestDigest: string };
  pushedBase?: string; packed: { layers: number };
}

function parse(r: { code: number | null; stdout: string; stderr: string }): Summary {
  expect(r.code, r.stderr).to.equal(0);
  return JSON.parse(r.stdout) as Summary;
}

async function searchCount(url: string): Promise<number> {
  const r = await fetch(`${url}/search?all=true&prerelease=true`, { signal: AbortSignal.timeout(30_000) });
  expect(r.status).to.equal(200);
  return (await r.json() as unknown[]).length;
}

/** Starts `image` in `docker` and returns how many versions it lists. */
async function served(docker: Docker, image: string): Promise<number> {
  const c = await runImage(docker, image);
  try {
    await waitForHttp(`${c.url}/health`, 60_000);
    return await searchCount(c.url);
  } finally {
    await removeContainer(docker, c.id);
  }
}

describe('images on every engine and registry', function () {
  this.timeout(900_000);
  const classic = engine();
  let registryPid: number | undefined;
  let port = 0;
  let repo = '';
  const refs: Array<[Docker, string]> = [];

  before(async () => {
    await ensureEngine(classic);
    sh('bash', [path.join(SHARED_CI, 'node-base-image.sh')]);
    port = await freePort();
    registryPid = Number(sh('bash', [path.join(SHARED_CI, 'registry-up.sh'), String(port)], 120_000).split('\n').pop());
    repo = `127.0.0.1:${port}/epr-it/engines`;
  });

  after(async () => {
    for (const [d, ref] of refs) await untag(d, ref).catch(() => undefined);
    if (registryPid) try { process.kill(registryPid); } catch { /* gone */ }
    cleanupTmp();
  });

  describe('a Docker engine with the containerd image store', () => {
    const cd = new Docker({ socketPath: CONTAINERD_SOCKET });
    const env = { DOCKER_HOST: `unix://${CONTAINERD_SOCKET}` };
    const cache = tmpDir('epr-it-cd-cache-');

    before(async function () {
      const up = spawnSync('bash', [path.join(SHARED_CI, 'docker-containerd-up.sh')], { encoding: 'utf8', timeout: 600_000 });
      if (up.status !== 0) throw new Error(`docker-containerd-up.sh failed: ${up.stderr}`);
      const r = spawnSync('bash', [path.join(SHARED_CI, 'node-base-image.sh')], { encoding: 'utf8', timeout: 600_000, env: { ...process.env, ...env } });
      if (r.status !== 0) throw new Error(`node-base-image.sh on the containerd engine failed: ${r.stderr}`);
    });

    it('builds staging unchanged, loads only what the engine lacks, serves every package; a rebuild sends nothing', async () => {
      const first = parse(await cli(['build', 'staging', '--repository', `${repo}-cd`, '--json', '--cache-dir', cache], env));
      for (const t of first.tags) refs.push([cd, t]);
      expect(first.engine?.store).to.equal('containerd');
      expect(first.check).to.equal('container');
      // the containerd store names an image by its manifest digest
      expect((await inspectImage(cd, first.tags[0]))!.Id).to.equal(first.digest);
      expect(await served(cd, first.tags[0])).to.equal(first.packages);

      const again = parse(await cli(['build', 'staging', '--repository', `${repo}-cd`, '--json', '--cache-dir', cache], env));
      // the same input, the same image (a commit landing meanwhile changes its labels, not its layers)
      if (again.commit === first.commit) expect(again.digest).to.equal(first.digest);
      expect(again.packed.layers).to.equal(0);
      expect(again.engine?.blobsSent, 'every layer blob is in the engine already').to.equal(0);
    });
  });

  describe('no engine at all', () => {
    const noEngine = { DOCKER_HOST: 'unix:///nonexistent/docker.sock' };

    it('without a base image anywhere: a clear error that says how to provide one, nothing pushed', async () => {
      const r = await cli(['build', 'production', '--no-engine', '--push', '--repository', `${repo}-nobase`, '--cache-dir', tmpDir('epr-it-ne-')], noEngine);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.match(/no registry base image/);
      expect(r.stderr).to.match(/--base/);
      expect(r.stderr).to.not.match(/\n\s+at /);
      const tags = await fetch(`http://127.0.0.1:${port}/v2/epr-it/engines-nobase/tags/list`);
      expect(tags.status).to.equal(404);
    });

    it('an engine build with --push puts the base next to the distribution; a --no-engine build finds it, checks in-process, pushes a runnable image', async () => {
      const withEngine = parse(await cli(['build', 'staging', '--repository', repo, '--push', '--json', '--cache-dir', tmpDir('epr-it-e-')]));
      for (const t of withEngine.tags) refs.push([classic, t]);
      expect(withEngine.pushedBase).to.match(new RegExp(`^${repo.replace(/[.]/g, '\\.')}:base-`));

      const cache = tmpDir('epr-it-ne-');
      const built = parse(await cli(['build', 'snapshot', '--no-engine', '--push', '--repository', repo, '--json', '--cache-dir', cache], noEngine));
      expect(built.check).to.equal('in-process');
      expect(built.engine).to.equal(undefined);
      expect(built.push!.blobsSent).to.be.greaterThan(0);

      // an independent reader sees the image the builder wrote
      const inspected = JSON.parse(sh('skopeo', ['inspect', '--tls-verify=false', `docker://${repo}:snapshot`])) as { Digest: string; Labels: Record<string, string> };
      expect(inspected.Digest).to.equal(built.push!.manifestDigest);
      expect(inspected.Labels['org.elastic.package-registry.distribution']).to.equal('snapshot');

      // the classic engine pulls and runs it
      await untag(classic, `${repo}:snapshot`).catch(() => undefined);
      await pullImage(classic, `${repo}:snapshot`);
      refs.push([classic, `${repo}:snapshot`]);
      expect(await served(classic, `${repo}:snapshot`)).to.equal(built.packages);

      // pushed again unchanged: no blob goes up
      const again = parse(await cli(['build', 'snapshot', '--no-engine', '--push', '--repository', repo, '--json', '--cache-dir', cache], noEngine));
      expect(again.digest).to.equal(built.digest);
      expect(again.push!.blobsSent).to.equal(0);
      expect(again.check, 'the very image was checked by the build before').to.equal('checked before');
    });

    it('an update bundle --since the tag this build moves carries only the changed layer and loads on top of the earlier image', async () => {
      const work = tmpDir('epr-it-upd-');
      const layer = path.join(work, 'pkgs');
      for (const n of ['a', 'b', 'c']) writeDirPackage(layer, { name: `upd_${n}`, version: '1.0.0', readme: `${n} ${Date.now()}\n`, files: { 'docs/extra.md': `${n} filler\n`.repeat(5000) } });
      const name = `itupd${Date.now() % 100000}`;
      const file = path.join(work, `${name}.yml`);
      const updRepo = `${repo}-upd`;
      fs.writeFileSync(file, [`name: ${name}`, 'image:', `  repository: ${updRepo}`, 'package_registry:', '  version: 1.40.1', 'layers:', '  - name: pkgs', '    source:', `      directory: ${layer}`].join('\n'));
      const tags = JSON.parse(sh('skopeo', ['list-tags', '--tls-verify=false', `docker://${repo}`])) as { Tags: string[] };
      const base = `${repo}:${tags.Tags.find((t) => t.startsWith('base-'))}`;
      const cache = tmpDir('epr-it-upd-cache-');
      const build = (...extra: string[]) => cli(['build', file, '--no-engine', '--base', base, '--json', '--cache-dir', cache, ...extra], noEngine);

      const full = path.join(work, 'v1.tar');
      const v1 = parse(await build('--save', full));
      fs.writeFileSync(path.join(layer, 'upd_b', '1.0.0', 'docs', 'README.md'), 'b changed\n');
      const update = path.join(work, 'v2.tar');
      const v2 = JSON.parse((await build('--save', update, '--since', `${updRepo}:${name}`)).stdout) as Summary & { saved: { bytes: number; fullBytes: number; blobsLeftOut: number } };
      expect(v2.digest).to.not.equal(v1.digest);
      expect(v2.saved.blobsLeftOut, 'the base layers and nothing else').to.be.greaterThan(0);
      expect(v2.saved.bytes, 'an update is under a tenth of the full bundle').to.be.below(v2.saved.fullBytes / 10);

      // on a site that holds the first image: the update loads on top and serves the change
      sh('docker', ['load', '-i', full]);
      refs.push([classic, `${updRepo}:${name}`]);
      sh('docker', ['load', '-i', update]);
      const c = await runImage(classic, `${updRepo}:${name}`);
      try {
        await waitForHttp(`${c.url}/health`, 60_000);
        const r = await fetch(`${c.url}/package/upd_b/1.0.0/docs/README.md`);
        expect(await r.text()).to.equal('b changed\n');
      } finally {
        await removeContainer(classic, c.id);
      }
    });

    it('--base takes an OCI image layout folder', async () => {
      const layout = path.join(tmpDir('epr-it-layout-'), 'base');
      const tags = JSON.parse(sh('skopeo', ['list-tags', '--tls-verify=false', `docker://${repo}`])) as { Tags: string[] };
      const baseTag = tags.Tags.find((t) => t.startsWith('base-'));
      expect(baseTag, 'the base pushed by the engine build').to.not.equal(undefined);
      sh('skopeo', ['copy', '--src-tls-verify=false', `docker://${repo}:${baseTag}`, `oci:${layout}:base`]);
      const built = parse(await cli(['build', 'production', '--no-engine', '--base', layout, '--save', path.join(path.dirname(layout), 'p.tar'), '--repository', `${repo}-layout`, '--json', '--cache-dir', tmpDir('epr-it-ne-')], noEngine));
      expect(built.check).to.equal('in-process');
      expect(fs.statSync(path.join(path.dirname(layout), 'p.tar')).size).to.be.greaterThan(1e6);
    });
  });
});
