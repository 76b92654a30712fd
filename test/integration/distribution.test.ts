/**
 * The distribution builder against a real Docker engine and a real registry:
 * builds the three sample distributions, runs them, checks the served sets,
 * the first-wins content, the shared production layer, the tag rule with a git
 * layer, a broken layer (nothing tagged), push/pull and save/load.
 *
 * Containers are reached only through ports published on 127.0.0.1. Every
 * image tag lives in a test-only repository on the test registry, and
 * everything created is removed at the end.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { expect } from 'chai';
import yauzl from 'yauzl';
import { engine, ensureEngine, inspectImage, pullImage, removeContainer, runImage, untag, waitForHttp, type RunningContainer } from '../../builder/image.js';
import { loadPackagePath } from '../../server/packages/index.js';
import { mergeFirstWins } from '../../server/packages/precedence.js';
import { cleanupTmp, tmpDir, writeDirPackage, writeZipPackage } from '../helpers/fixtures.js';
import { PROJECT_ROOT } from '../helpers/server.js';
import { CLI, cli, exec, freePort, sh } from '../helpers/builder-cli.js';

const LAYERS = path.join(PROJECT_ROOT, 'distributions', 'layers');
const SAMPLES = ['production', 'staging', 'snapshot'] as const;
const SAMPLE_LAYERS: Record<string, string[]> = { production: ['production'], staging: ['production', 'staging'], snapshot: ['production', 'staging', 'snapshot'] };





/** What first-wins over the layers serves, by the shared package model. */
async function expectedSet(layers: string[]): Promise<string[]> {
  const loaded = [];
  for (const l of layers) loaded.push((await loadPackagePath(path.join(LAYERS, l), { validate: true })).packages);
  return mergeFirstWins(loaded).winners.map((p) => `${p.name}@${p.version}`).sort();
}

async function searchAll(url: string): Promise<Array<{ name: string; version: string; title: string }>> {
  const r = await fetch(`${url}/search?all=true&prerelease=true`, { signal: AbortSignal.timeout(30_000) });
  expect(r.status).to.equal(200);
  return await r.json() as Array<{ name: string; version: string; title: string }>;
}

const ids = (list: Array<{ name: string; version: string }>) => list.map((p) => `${p.name}@${p.version}`).sort();

function readZipEntry(buf: Buffer, entry: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(buf, { lazyEntries: true }, (err, zip) => {
      if (err || !zip) { reject(err); return; }
      zip.on('entry', (e: yauzl.Entry) => {
        if (e.fileName !== entry) { zip.readEntry(); return; }
        zip.openReadStream(e, (err2, s) => {
          if (err2 || !s) { reject(err2); return; }
          const chunks: Buffer[] = [];
          s.on('data', (c: Buffer) => chunks.push(c));
          s.on('end', () => resolve(Buffer.concat(chunks)));
        });
      });
      zip.on('end', () => reject(new Error(`no ${entry} in zip`)));
      zip.readEntry();
    });
  });
}

describe('distribution images (Docker engine + registry)', function () {
  this.timeout(900_000);
  const docker = engine();
  let registryPid: number | undefined;
  let repo = '';
  const containers: string[] = [];
  const createdRefs = new Set<string>();
  const builds: Record<string, { image: string; tags: string[]; seconds: number }> = {};
  const answers: Record<string, string[]> = {};

  async function run(image: string): Promise<RunningContainer> {
    const c = await runImage(docker, image);
    containers.push(c.id);
    await waitForHttp(`${c.url}/health`, 60_000);
    return c;
  }

  async function stop(c: RunningContainer): Promise<void> {
    await removeContainer(docker, c.id);
    containers.splice(containers.indexOf(c.id), 1);
  }

  type BuildJson = {
    image: string; tags: string[]; layersSent: number; layersReused: number; speculation?: string;
    delta?: { added: number; changed: number; removed: number; bytes: number; fullBytes: number };
  };
  const layersOf = async (image: string) => (await inspectImage(docker, image))!.RootFS.Layers!;

  /** A distribution of two folder layers, <work>/lower and <work>/upper, and a `build --json` of it with a builder cache of its own. */
  function twoLayerDistribution(name: string, work: string): (...extra: string[]) => Promise<BuildJson> {
    const cacheDir = tmpDir('epr-it-cache-');
    const file = path.join(work, `${name}.yml`);
    fs.writeFileSync(file, [
      `name: ${name}`, 'image:', `  repository: ${repo}`, 'package_registry:', '  version: 1.40.1', 'layers:',
      '  - name: lower', '    source:', `      directory: ${path.join(work, 'lower')}`,
      '  - name: upper', '    source:', `      directory: ${path.join(work, 'upper')}`,
    ].join('\n'));
    return async (...extra) => {
      const r = await cli(['build', file, '--json', '--cache-dir', cacheDir, ...extra]);
      expect(r.code, r.stderr).to.equal(0);
      const summary = JSON.parse(r.stdout) as BuildJson;
      for (const t of summary.tags) createdRefs.add(t);
      return summary;
    };
  }

  before(async () => {
    await ensureEngine(docker);
    sh('bash', [path.join(PROJECT_ROOT, '..', 'shared', 'ci', 'node-base-image.sh')]);
    const port = await freePort();
    registryPid = Number(sh('bash', [path.join(PROJECT_ROOT, '..', 'shared', 'ci', 'registry-up.sh'), String(port)], 120_000).split('\n').pop());
    repo = `127.0.0.1:${port}/epr-it/distribution`;
    for (const d of SAMPLES) {
      const r = await cli(['build', d, '--repository', repo, '--json']);
      expect(r.code, r.stderr).to.equal(0);
      const summary = JSON.parse(r.stdout) as { image: string; tags: string[] };
      builds[d] = { ...summary, seconds: r.seconds };
      for (const t of summary.tags) createdRefs.add(t);
    }
  });

  after(async () => {
    for (const c of containers) await removeContainer(docker, c);
    for (const ref of createdRefs) await untag(docker, ref).catch(() => undefined);
    if (registryPid) try { process.kill(registryPid); } catch { /* gone */ }
    cleanupTmp();
    process.stdout.write(`      build times: ${SAMPLES.map((d) => `${d} ${builds[d]?.seconds.toFixed(1)} s`).join(', ')}\n`);
  });

  it('each image serves exactly the first-wins merge of its layers', async () => {
    for (const d of SAMPLES) {
      const c = await run(builds[d].image);
      const served = ids(await searchAll(c.url));
      expect(served, d).to.deep.equal(await expectedSet(SAMPLE_LAYERS[d]));
      answers[d] = served;
      await stop(c);
    }
  });

  it('a name+version in two layers is served with the first layer\'s content and named in the shadow report', async () => {
    const c = await run(builds.staging.image);
    const report = JSON.parse((await exec(docker, c.id, ['cat', '/package-registry/shadow-report.json'])).out) as {
      shadowed: Array<{ name: string; version: string; winner: { layer: string; hash: string }; hidden: { layer: string; hash: string }; differs: boolean }>;
    };
    const both = report.shadowed.find((s) => s.winner.layer === 'production' && s.hidden.layer === 'staging');
    expect(both, JSON.stringify(report)).to.not.equal(undefined);
    const { name, version } = both!;
    expect(both!.differs).to.equal(true);
    expect(both!.winner.hash).to.not.equal(both!.hidden.hash);

    const r = await fetch(`${c.url}/epr/${name}/${name}-${version}.zip`, { signal: AbortSignal.timeout(30_000) });
    expect(r.status).to.equal(200);
    const zip = Buffer.from(await r.arrayBuffer());
    const served = await readZipEntry(zip, `${name}-${version}/manifest.yml`);
    expect(served.equals(fs.readFileSync(path.join(LAYERS, 'production', name, version, 'manifest.yml')))).to.equal(true);
    expect(served.equals(fs.readFileSync(path.join(LAYERS, 'staging', name, version, 'manifest.yml')))).to.equal(false);
    await stop(c);
  });

  it('the three images share the production layer (same diff ID at the same position)', async () => {
    const info = await Promise.all(SAMPLES.map(async (d) => (await inspectImage(docker, builds[d].image))!));
    const base = await inspectImage(docker, info[0].Config.Labels!['org.opencontainers.image.base.name']);
    const n = base!.RootFS.Layers!.length;
    const layers = info.map((i) => i.RootFS.Layers!);
    expect(layers[1][n]).to.equal(layers[0][n]);
    expect(layers[2][n]).to.equal(layers[0][n]);
    expect(layers[2][n + 1], 'staging layer shared by staging and snapshot').to.equal(layers[1][n + 1]);
    expect(layers[0].slice(0, n)).to.deep.equal(base!.RootFS.Layers);
  });

  it('a rebuild after one package of the last layer changed sends only that layer, and serves the change', async () => {
    const work = tmpDir('epr-it-reuse-');
    // content of this run only: layers of earlier runs in the engine are not reused
    writeDirPackage(path.join(work, 'lower'), { name: 'lower_pkg', version: '1.0.0', readme: `lower ${Date.now()}\n` });
    writeDirPackage(path.join(work, 'upper'), { name: 'upper_pkg', version: '1.0.0', readme: 'first\n' });
    const build = twoLayerDistribution('itreuse', work);

    const first = await build();
    expect([first.layersSent, first.layersReused]).to.deep.equal([2, 0]);
    fs.appendFileSync(path.join(work, 'upper', 'upper_pkg', '1.0.0', 'docs', 'README.md'), 'second\n');
    const second = await build();
    expect([second.layersSent, second.layersReused]).to.deep.equal([1, 1]);
    // the lower layer was taken from the cache on trust, and its files confirmed it
    expect(second.speculation).to.equal('confirmed');
    const [a, b] = [await layersOf(first.image), await layersOf(second.image)];
    const n = a.length;
    expect(b).to.have.length(n);
    // base layers and the lower package layer are the same; the upper package layer (and the config on top) are new
    expect(b.slice(0, n - 2)).to.deep.equal(a.slice(0, n - 2));
    expect(b[n - 2]).to.not.equal(a[n - 2]);
    const c = await run(second.image);
    expect(await (await fetch(`${c.url}/package/upper_pkg/1.0.0/docs/README.md`)).text()).to.equal('first\nsecond\n');
    await stop(c);

    const again = await build();
    expect([again.layersSent, again.layersReused]).to.deep.equal([0, 2]);
    expect((await layersOf(again.image)).slice(0, n - 1)).to.deep.equal(b.slice(0, n - 1));

    // a change in the layer taken on trust is found while the image is made, and the image is made again
    fs.appendFileSync(path.join(work, 'lower', 'lower_pkg', '1.0.0', 'docs', 'README.md'), 'lower changed\n');
    const lower = await build();
    expect(lower.speculation).to.equal('redone');
    expect([lower.layersSent, lower.layersReused]).to.deep.equal([2, 0]);
    const c2 = await run(lower.image);
    expect(await (await fetch(`${c2.url}/package/lower_pkg/1.0.0/docs/README.md`)).text()).to.match(/lower changed\n$/);
    await stop(c2);
    const b2 = await layersOf(lower.image);
    // --no-cache reads and sends everything again (the base image is rebuilt too), and gets the same package layers
    const fresh = await build('--no-cache');
    expect([fresh.layersSent, fresh.layersReused]).to.deep.equal([2, 0]);
    expect((await layersOf(fresh.image)).slice(n - 3, n - 1)).to.deep.equal(b2.slice(n - 3, n - 1));
  });

  it('a few changed packages of a large top layer go as a delta that serves what the full layer serves', async () => {
    const work = tmpDir('epr-it-delta-');
    const upper = path.join(work, 'upper');
    writeDirPackage(path.join(work, 'lower'), { name: 'lower_pkg', version: '1.0.0', readme: `lower ${Date.now()}\n` });
    // each package's filler its own: a layer carries a repeated content once (as hard links), so shared filler would not make it large
    const filler = (n: string) => ({ 'docs/extra.md': `${`${n} filler line\n`.repeat(2000)}` });
    for (const n of ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']) writeDirPackage(upper, { name: `delta_${n}`, version: '1.0.0', readme: `${n} first\n`, files: filler(n) });
    writeDirPackage(upper, { name: 'delta_a', version: '2.0.0', files: filler('a2') });
    await writeZipPackage(upper, { name: 'delta_zip', version: '1.0.0' });
    const build = twoLayerDistribution('itdelta', work);
    const answers = async (image: string) => {
      const c = await run(image);
      const get = async (p: string) => { const r = await fetch(`${c.url}${p}`); return `${r.status} ${await r.text()}`; };
      const out = {
        search: await get('/search?all=true&prerelease=true'),
        categories: await get('/categories?include_policy_templates=true'),
        changed: await get('/package/delta_b/1.0.0/docs/README.md'),
        dropped: await get('/package/delta_b/1.0.0/docs/extra.md'),
        removedVersion: await get('/package/delta_a/2.0.0/'),
        keptVersion: (await get('/package/delta_a/1.0.0/')).slice(0, 3),
        removedName: await get('/package/delta_c/1.0.0/'),
        removedZip: (await get('/epr/delta_zip/delta_zip-1.0.0.zip')).slice(0, 3),
        added: (await get('/package/delta_z/1.0.0/')).slice(0, 3),
      };
      await stop(c);
      return out;
    };

    const first = await build();
    expect([first.delta, first.layersSent]).to.deep.equal([undefined, 2]);
    // one package changed (and lost a file), one added, a version, a whole package and a zip removed
    fs.writeFileSync(path.join(upper, 'delta_b', '1.0.0', 'docs', 'README.md'), 'b second\n');
    fs.rmSync(path.join(upper, 'delta_b', '1.0.0', 'docs', 'extra.md'));
    writeDirPackage(upper, { name: 'delta_z', version: '1.0.0' });
    fs.rmSync(path.join(upper, 'delta_a', '2.0.0'), { recursive: true });
    fs.rmSync(path.join(upper, 'delta_c'), { recursive: true });
    fs.rmSync(path.join(upper, 'delta_zip-1.0.0.zip'));
    fs.rmSync(path.join(upper, 'delta_zip-1.0.0.zip.sig'));

    const second = await build();
    expect(second.delta, 'the top layer went as a delta').to.include({ added: 1, changed: 1, removed: 3 });
    expect(second.delta!.bytes).to.be.below(second.delta!.fullBytes / 4);
    expect([second.layersSent, second.layersReused]).to.deep.equal([1, 2]);
    const [a, b] = [await layersOf(first.image), await layersOf(second.image)];
    // the first image's layers, all of them, then the delta and the top layer
    expect(b).to.have.length(a.length + 1);
    expect(b.slice(0, a.length - 1)).to.deep.equal(a.slice(0, a.length - 1));
    const viaDelta = await answers(second.image);
    expect(viaDelta.changed).to.equal('200 b second\n');
    expect(viaDelta.dropped).to.match(/^404 /);
    expect(viaDelta.removedVersion).to.match(/^404 /);
    expect(viaDelta.keptVersion).to.equal('200');
    expect(viaDelta.removedName).to.match(/^404 /);
    expect(viaDelta.removedZip).to.equal('404');
    expect(viaDelta.added).to.equal('200');

    // nothing changed: every layer reused, the delta included
    const again = await build();
    expect([again.layersSent, again.layersReused]).to.deep.equal([0, 3]);
    expect((await layersOf(again.image)).slice(0, -1)).to.deep.equal(b.slice(0, -1));

    // --no-delta: the top layer whole, and the very same answers
    const whole = await build('--no-delta');
    expect(whole.delta).to.equal(undefined);
    expect([whole.layersSent, whole.layersReused]).to.deep.equal([1, 1]);
    expect(await layersOf(whole.image)).to.have.length(a.length);
    expect(await answers(whole.image)).to.deep.equal(viaDelta);
  });

  it('max_layer_size splits a layer into parts: one new version changes one part, a delta goes across parts, every answer as with one part', async () => {
    const work = tmpDir('epr-it-split-');
    const upper = path.join(work, 'upper');
    writeDirPackage(path.join(work, 'lower'), { name: 'lower_pkg', version: '1.0.0', readme: `lower ${Date.now()}\n` });
    // about 100 kB a name: each version's filler its own, an icon shared by its versions
    const filler = (seed: string, bytes = 40_000) => crypto.createHash('sha256').update(seed).digest('hex').repeat(Math.ceil(bytes / 64)).slice(0, bytes);
    const version = (n: string, v: string, bytes?: number) => writeDirPackage(upper, {
      name: n, version: v, readme: `${n} ${v}\n`, files: { 'docs/extra.md': filler(`${n}${v}${Date.now()}`, bytes ?? 40_000), ...(bytes ? {} : { 'img/icon.png': filler(`${n} icon`, 20_000) }) },
    });
    for (const n of ['split_a', 'split_c', 'split_d', 'split_f']) for (const v of ['1.0.0', '1.1.0']) version(n, v);
    // and one name of many small versions: a part of its own, of which one version is little (a delta's case)
    for (let i = 0; i < 12; i++) version('split_e', `1.${i}.0`, 13_000);
    await writeZipPackage(upper, { name: 'split_zip', version: '1.0.0', files: { 'docs/extra.md': filler('zip') } });
    const define = (name: string, extra: string[]) => {
      const cacheDir = tmpDir('epr-it-cache-');
      const file = path.join(work, `${name}.yml`);
      fs.writeFileSync(file, [
        `name: ${name}`, 'image:', `  repository: ${repo}`, 'package_registry:', '  version: 1.40.1', ...extra, 'layers:',
        '  - name: lower', '    source:', `      directory: ${path.join(work, 'lower')}`,
        '  - name: upper', '    source:', `      directory: ${upper}`,
      ].join('\n'));
      return async (...args: string[]) => {
        const r = await cli(['build', file, '--json', '--cache-dir', cacheDir, ...args]);
        expect(r.code, r.stderr).to.equal(0);
        const summary = JSON.parse(r.stdout) as SplitJson;
        for (const t of summary.tags) createdRefs.add(t);
        return summary;
      };
    };
    type SplitJson = BuildJson & {
      packed: { layers: number };
      oversized?: unknown[];
      layers: Array<{ name: string; parts: number; biggestPart: number; imageLayers: number; files: number; distinctFiles: number; tarBytes: number; treeBytes: number; bounds: string[] }>;
    };
    const cap = 300_000;
    const split = define('itsplit', ['max_layer_size: 300kB']);
    const whole = define('itwhole', []);
    const answers = async (image: string) => {
      const c = await run(image);
      const get = async (p: string) => {
        const r = await fetch(`${c.url}${p}`);
        const body = Buffer.from(await r.arrayBuffer());
        return `${r.status} ${r.headers.get('content-type')} ${body.length} ${crypto.createHash('sha256').update(body).digest('hex')}`;
      };
      const search = await (await fetch(`${c.url}/search?all=true&prerelease=true`)).json() as Array<{ name: string; version: string; download: string }>;
      const out: Record<string, string> = { search: await get('/search?all=true&prerelease=true'), categories: await get('/categories?include_policy_templates=true') };
      for (const p of search) {
        out[`${p.name}@${p.version}`] = await get(`/package/${p.name}/${p.version}/`);
        out[`${p.name}@${p.version} readme`] = await get(`/package/${p.name}/${p.version}/docs/README.md`);
        out[`${p.name}@${p.version} zip`] = await get(p.download);
      }
      await stop(c);
      return out;
    };

    const s1 = await split('--no-delta');
    const w1 = await whole();
    const up1 = s1.layers.find((l) => l.name === 'upper')!;
    expect(up1.parts, JSON.stringify(up1)).to.be.greaterThan(2);
    expect(up1.imageLayers).to.equal(up1.parts + 1);
    for (const l of s1.layers) expect(l.biggestPart, l.name).to.be.at.most(cap);
    expect(s1.oversized).to.deep.equal([]);
    expect(w1.layers.find((l) => l.name === 'upper')!.parts).to.equal(1);
    // the same files either way; the split only costs each part its own copy of what parts share
    expect(up1.files).to.equal(w1.layers.find((l) => l.name === 'upper')!.files);
    const [a, aw] = [await layersOf(s1.image), await layersOf(w1.image)];
    expect(a.length).to.equal(aw.length + up1.parts);
    const before = await answers(s1.image);
    expect(before).to.deep.equal(await answers(w1.image));

    // one new version of one package: one package part changes (and the layer's index part); the split is read back and kept
    version('split_c', '1.2.0');
    const s2 = await split('--no-delta');
    const up2 = s2.layers.find((l) => l.name === 'upper')!;
    expect(up2.bounds).to.deep.equal(up1.bounds);
    const b = await layersOf(s2.image);
    expect(b).to.have.length(a.length);
    const differ = b.map((d, i) => (d !== a[i] ? i : -1)).filter((i) => i >= 0);
    const indexAt = a.length - 2;
    // a package part, the index part and the top layer (Dockerfile.distribution's)
    expect(differ).to.have.length(3);
    expect(differ.slice(1)).to.deep.equal([indexAt, a.length - 1]);
    expect(s2.packed.layers, 'one part and the index part packed').to.equal(2);
    expect(s2.layersSent).to.equal(indexAt - differ[0] + 1);
    for (const l of s2.layers) expect(l.biggestPart, l.name).to.be.at.most(cap);

    // a changed package with deltas allowed: one delta above all of the last image's parts, its index included
    fs.writeFileSync(path.join(upper, 'split_e', '1.3.0', 'docs', 'README.md'), 'split_e changed\n');
    const s3 = await split();
    expect(s3.delta, 'a delta').to.include({ changed: 1, added: 0, removed: 0 });
    expect([s3.layersSent, s3.packed.layers]).to.deep.equal([1, 1]);
    const c = await layersOf(s3.image);
    expect(c).to.have.length(b.length + 1);
    expect(c.slice(0, b.length - 1)).to.deep.equal(b.slice(0, b.length - 1));
    const w3 = await whole('--no-delta');
    const after = await answers(s3.image);
    expect(after['split_e@1.3.0 readme']).to.not.equal(before['split_e@1.3.0 readme']);
    expect(after['split_c@1.2.0']).to.match(/^200 /);
    expect(after).to.deep.equal(await answers(w3.image));
    // and sent whole, the same answers from parts
    const s4 = await split('--no-delta');
    expect(s4.delta).to.equal(undefined);
    expect(s4.packed.layers).to.equal(2);
    expect(await answers(s4.image)).to.deep.equal(after);
  });

  describe('tags from a git layer', () => {
    let storage = '';
    let commit = '';
    let defDir = '';

    before(() => {
      storage = tmpDir('epr-it-storage-');
      writeDirPackage(path.join(storage, 'packages'), { name: 'git_pkg', version: '0.1.0' });
      const git = (...args: string[]) => sh('git', ['-C', storage, '-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args]);
      git('init', '-q', '-b', 'main');
      git('add', '.');
      git('commit', '-q', '-m', 'packages');
      git('tag', '7.9.0');
      git('tag', 'v7.9.0');
      git('tag', '-a', '7.10.0', '-m', 'annotated');
      commit = git('rev-parse', 'HEAD');
      // a later commit changes the working tree: the build reads the ref, not the checkout
      fs.rmSync(path.join(storage, 'packages'), { recursive: true });
      defDir = tmpDir('epr-it-defs-');
    });

    function writeDefinition(name: string, extraLayer?: string, baseImage = 'node:20-bookworm-slim'): string {
      const file = path.join(defDir, `${name}.yml`);
      fs.writeFileSync(file, [
        `name: ${name}`, 'image:', `  repository: ${repo}`, 'package_registry:', '  version: 1.40.1', `  base_image: ${baseImage}`, 'layers:',
        '  - name: storage', '    source:', `      git: { repo: ${storage}, ref: main, path: packages }`,
        ...(extraLayer ? ['  - name: extra', '    source:', `      directory: ${extraLayer}`] : []),
      ].join('\n'));
      return file;
    }

    it('tags name, commit hash and each bare X.Y.Z git tag on the commit', async () => {
      const r = await cli(['build', writeDefinition('itgit'), '--json']);
      expect(r.code, r.stderr).to.equal(0);
      const s = JSON.parse(r.stdout) as { image: string; tags: string[]; commit: string };
      for (const t of s.tags) createdRefs.add(t);
      expect(s.commit).to.equal(commit);
      expect(s.tags).to.deep.equal([`${repo}:itgit`, `${repo}:${commit}`, `${repo}:7.9.0`, `${repo}:7.10.0`]);
      const info = await inspectImage(docker, s.image);
      expect(info!.RepoTags).to.include.members(s.tags);
      expect(info!.RepoTags).to.not.include(`${repo}:v7.9.0`);
      expect(await inspectImage(docker, `${repo}:v7.9.0`)).to.equal(undefined);
      const c = await run(s.image);
      expect(ids(await searchAll(c.url))).to.include('git_pkg@0.1.0');
      await stop(c);
    });

    it('a layer with a broken manifest fails the build, names the file, and moves no tag', async () => {
      const before = (await inspectImage(docker, `${repo}:itgit`))!.Id;
      const broken = tmpDir('epr-it-broken-');
      writeDirPackage(broken, { name: 'broken_pkg', version: '1.0.0', omit: ['title'] });
      const r = await cli(['build', writeDefinition('itgit', broken)]);
      expect(r.code).to.equal(1);
      const first = r.stderr.split('\n')[0];
      expect(first).to.match(/^error: invalid package: layer extra: /);
      expect(first).to.include(path.join(broken, 'broken_pkg', '1.0.0', 'manifest.yml'));
      expect(first).to.include('title');
      expect((await inspectImage(docker, `${repo}:itgit`))!.Id).to.equal(before);
      expect((await inspectImage(docker, `${repo}:${commit}`))!.Id).to.equal(before);
    });

    it('a failing docker build (reported inside the build stream) fails the command and moves no tag', async () => {
      const before = (await inspectImage(docker, `${repo}:itgit`))!.Id;
      const r = await cli(['build', writeDefinition('itgit', undefined, 'epr-it-no-such-image:none'), '--no-cache']);
      expect(r.code, r.stdout + r.stderr).to.equal(1);
      expect(r.stderr.split('\n')[0]).to.match(/^error: docker build failed at step \d+\/\d+ \(FROM \$\{NODE_IMAGE\} AS build\): /);
      expect((await inspectImage(docker, `${repo}:itgit`))!.Id).to.equal(before);
      const temps = await docker.listImages({ filters: JSON.stringify({ reference: ['package-registry-build'] }) } as never);
      expect(temps, 'temporary build tags are removed').to.deep.equal([]);
    });

    it('a folder layer with uncommitted changes gets the name tag only', async () => {
      const work = tmpDir('epr-it-work-');
      writeDirPackage(path.join(work, 'layer'), { name: 'dirty_pkg', version: '1.0.0' });
      const git = (...args: string[]) => sh('git', ['-C', work, '-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args]);
      git('init', '-q', '-b', 'main');
      git('add', '.');
      git('commit', '-q', '-m', 'layer');
      git('tag', '8.0.0');
      const head = git('rev-parse', 'HEAD');
      const file = path.join(defDir, 'itdirty.yml');
      fs.writeFileSync(file, [
        'name: itdirty', 'image:', `  repository: ${repo}`, 'package_registry:', '  version: 1.40.1', 'layers:',
        '  - name: work', '    source:', `      directory: ${path.join(work, 'layer')}`,
      ].join('\n'));
      const clean = await cli(['build', file, '--json']);
      expect(clean.code, clean.stderr).to.equal(0);
      const c = JSON.parse(clean.stdout) as { tags: string[]; warnings: string[] };
      for (const t of c.tags) createdRefs.add(t);
      expect(c.tags).to.deep.equal([`${repo}:itdirty`, `${repo}:${head}`, `${repo}:8.0.0`]);

      fs.appendFileSync(path.join(work, 'layer', 'dirty_pkg', '1.0.0', 'docs', 'README.md'), 'changed, not committed\n');
      const dirty = await cli(['build', file, '--json']);
      expect(dirty.code, dirty.stderr).to.equal(0);
      const d = JSON.parse(dirty.stdout) as { image: string; tags: string[]; warnings: string[]; dirtyLayers: string[] };
      expect(d.tags).to.deep.equal([`${repo}:itdirty`]);
      expect(d.dirtyLayers).to.deep.equal(['work']);
      expect(d.warnings.join('\n')).to.match(/layer\(s\) work have uncommitted changes/);
      expect((await inspectImage(docker, `${repo}:${head}`))!.Id, 'the commit tag stays on the clean build').to.not.equal(d.image);
      expect((await inspectImage(docker, `${repo}:itdirty`))!.Config.Labels!['org.elastic.package-registry.layers']).to.equal(`work@${head}+dirty`);
    });

    it('a missing layer source fails with one line and moves no tag', async () => {
      const before = (await inspectImage(docker, `${repo}:itgit`))!.Id;
      const r = await cli(['build', writeDefinition('itgit', path.join(defDir, 'nope'))]);
      expect(r.code).to.equal(1);
      expect(r.stderr.trim().split('\n')).to.have.length(1);
      expect(r.stderr).to.match(/layer "extra": source folder .*nope does not exist/);
      expect((await inspectImage(docker, `${repo}:itgit`))!.Id).to.equal(before);
    });
  });

  it('push, remove the local images, pull, run: same answers', async () => {
    const r = await cli(['build', 'production', '--repository', repo, '--push', '--json']);
    expect(r.code, r.stderr).to.equal(0);
    const s = JSON.parse(r.stdout) as { image: string; tags: string[]; pushed: Array<{ ref: string; digest?: string }> };
    expect(s.pushed.map((p) => p.ref)).to.deep.equal(s.tags);
    for (const p of s.pushed) expect(p.digest).to.match(/^sha256:[0-9a-f]{64}$/);
    for (const t of s.tags) await untag(docker, t);
    expect(await inspectImage(docker, `${repo}:production`)).to.equal(undefined);
    await pullImage(docker, `${repo}:production`);
    const c = await run(`${repo}:production`);
    expect(ids(await searchAll(c.url))).to.deep.equal(answers.production);
    await stop(c);
  });

  it('a refused push fails and puts the tags back', async () => {
    const before = (await inspectImage(docker, `${repo}:production`))!.Id;
    // nothing listens on this port: the engine's push stream reports the failure
    const deadRepo = `127.0.0.1:${await freePort()}/epr-it/distribution`;
    const r = await cli(['build', 'production', '--repository', deadRepo, '--push']);
    expect(r.code).to.equal(1);
    expect(r.stderr.split('\n')[0]).to.match(/^error: push .* failed: cannot connect/);
    expect(await inspectImage(docker, `${deadRepo}:production`)).to.equal(undefined);
    expect((await inspectImage(docker, `${repo}:production`))!.Id).to.equal(before);
  });

  it('push to a registry that wants a password: credentials from the docker config; without them the push is refused and the tags go back', async () => {
    const dir = tmpDir('epr-it-auth-');
    const salt = '$2b$10$' + 'abcdefghijklmnopqrstuv';
    const hash = sh('python3', ['-c', `import crypt; print(crypt.crypt('s3cret', '${salt}'))`]);
    fs.writeFileSync(path.join(dir, 'htpasswd'), `builder:${hash}\n`);
    const port = await freePort();
    const pid = Number(sh('bash', [path.join(PROJECT_ROOT, '..', 'shared', 'ci', 'registry-up.sh'), String(port), path.join(dir, 'htpasswd')], 120_000).split('\n').pop());
    const authRepo = `127.0.0.1:${port}/epr-it/auth`;
    try {
      const withCreds = path.join(dir, 'with');
      const without = path.join(dir, 'without');
      fs.mkdirSync(withCreds);
      fs.mkdirSync(without);
      fs.writeFileSync(path.join(withCreds, 'config.json'), JSON.stringify({ auths: { [`127.0.0.1:${port}`]: { auth: Buffer.from('builder:s3cret').toString('base64') } } }));

      const refused = await cli(['build', 'production', '--repository', authRepo, '--push'], { DOCKER_CONFIG: without });
      expect(refused.code).to.equal(1);
      expect(refused.stderr.split('\n')[0]).to.match(/^error: push 127\.0\.0\.1:\d+\/epr-it\/auth:production failed: .*(auth|credentials)/i);
      expect(await inspectImage(docker, `${authRepo}:production`), 'a tag that did not exist before is removed again').to.equal(undefined);

      const ok = await cli(['build', 'production', '--repository', authRepo, '--push', '--json'], { DOCKER_CONFIG: withCreds });
      expect(ok.code, ok.stderr).to.equal(0);
      const s = JSON.parse(ok.stdout) as { tags: string[]; pushed: Array<{ ref: string }> };
      for (const t of s.tags) createdRefs.add(t);
      expect(s.pushed.map((p) => p.ref)).to.deep.equal(s.tags);
      const catalog = await fetch(`http://127.0.0.1:${port}/v2/epr-it/auth/tags/list`, { headers: { authorization: `Basic ${Buffer.from('builder:s3cret').toString('base64')}` } });
      expect(((await catalog.json()) as { tags: string[] }).tags).to.include('production');
    } finally {
      try { process.kill(pid); } catch { /* gone */ }
    }
  });

  it('--save, docker rmi, load, run: same answers, and /health answers with the network disabled', async () => {
    const dir = tmpDir('epr-it-save-');
    const file = path.join(dir, 'snapshot.tar');
    const r = await cli(['build', 'snapshot', '--repository', repo, '--save', file, '--json']);
    expect(r.code, r.stderr).to.equal(0);
    const s = JSON.parse(r.stdout) as { image: string; tags: string[]; saved: { bytes: number } };
    expect(fs.statSync(file).size).to.equal(s.saved.bytes);
    expect(fs.readdirSync(dir)).to.deep.equal(['snapshot.tar']);
    for (const t of s.tags) await untag(docker, t);
    // the image goes with its last tag (it may still carry tags from builds outside this test)
    const left = await inspectImage(docker, s.image);
    if (left) expect(left.RepoTags?.filter((t) => t.startsWith(`${repo}:`))).to.deep.equal([]);
    else expect(left).to.equal(undefined);

    const loaded = await cli(['load', file, '--json']);
    expect(loaded.code, loaded.stderr).to.equal(0);
    const l = JSON.parse(loaded.stdout) as { images: Array<{ image: string; distribution: string; searched: number }> };
    expect(l.images.map((i) => [i.image, i.distribution])).to.deep.equal([[s.image, 'snapshot']]);

    const c = await run(`${repo}:snapshot`);
    expect(ids(await searchAll(c.url))).to.deep.equal(answers.snapshot);
    await stop(c);

    const offline = await docker.createContainer({ Image: `${repo}:snapshot`, HostConfig: { NetworkMode: 'none' } });
    containers.push(offline.id);
    await offline.start();
    const probe = "fetch('http://127.0.0.1:8080/health').then((r) => { console.log(r.status); process.exit(r.ok ? 0 : 1); }, (e) => { console.log(e.message); process.exit(1); })";
    let result = { code: -1, out: '' };
    for (let i = 0; i < 60 && result.code !== 0; i++) {
      result = await exec(docker, offline.id, ['node', '-e', probe]);
      if (result.code !== 0) await new Promise((res) => setTimeout(res, 500));
    }
    expect(result, result.out).to.deep.include({ code: 0 });
    expect(result.out.trim()).to.equal('200');
    await removeContainer(docker, offline.id);
  });

  it('usage errors exit 2; an unreachable engine is one clear line', async () => {
    expect((await cli(['build'])).code).to.equal(2);
    expect((await cli(['build', 'production', '--bogus'])).code).to.equal(2);
    expect((await cli(['load'])).code).to.equal(2);
    const unknown = await cli(['build', 'no-such-distribution']);
    expect(unknown.code).to.equal(2);
    expect(unknown.stderr).to.match(/^error: no distribution "no-such-distribution" .*known: .*production/);
    const help = await cli(['build', '--help']);
    expect(help.code).to.equal(0);
    expect(help.stdout).to.match(/^Usage: build/);
    const child = spawnSync(process.execPath, [CLI, 'build', 'production'], { cwd: PROJECT_ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, DOCKER_HOST: 'unix:///nonexistent/docker.sock' } });
    expect(child.status).to.equal(1);
    expect(child.stderr.trim().split('\n')).to.have.length(1);
    expect(child.stderr).to.match(/cannot reach the Docker engine at unix:\/\/\/nonexistent\/docker\.sock .*--no-engine/);
  });
});
