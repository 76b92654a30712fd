/**
 * The stage policy against a real Docker engine and a real registry: a
 * staging-like and a production-like definition over one temporary layer,
 * built under a test-only repository; then the layer changes (same version,
 * other content; a version removed) and the rebuilds are refused or allowed
 * as the table says, with the tags left where they were on refusal. Also
 * diff:distribution between two images, and the published list read from the
 * registry once the local image is gone.
 *
 * Only 127.0.0.1 is reached; everything created is removed at the end.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { engine, ensureEngine, inspectImage, pushImage, tagImage, untag } from '../../builder/image.js';
import { readBakedList } from '../../builder/stages/published.js';
import { cleanupTmp, tmpDir, writeDirPackage } from '../helpers/fixtures.js';
import { PROJECT_ROOT } from '../helpers/server.js';
import { cli, freePort, sh, type CliResult } from '../helpers/builder-cli.js';

const LABEL = 'org.elastic.package-registry';





interface Summary {
  image: string;
  tags: string[];
  vsPublished?: { source: string; added: number; removed: number; changed: number; sizeDelta: number };
}

describe('stage policy (Docker engine + registry)', function () {
  this.timeout(900_000);
  const docker = engine();
  let registryPid: number | undefined;
  let repo = '';
  let layer = '';
  let defs = '';
  const refs = new Set<string>();
  /** every image built, removed at the end once untagged (older builds lose their tag) */
  const images = new Set<string>();
  const times: string[] = [];

  function definition(name: string, overwrite: string, removal: string): string {
    const file = path.join(defs, `${name}.yml`);
    fs.writeFileSync(file, [
      `name: ${name}`, 'image:', `  repository: ${repo}`, 'package_registry:', '  version: 1.40.1', 'layers:',
      '  - name: main', '    source:', `      directory: ${layer}`,
      'policy:', `  overwrite: ${overwrite}`, `  removal: ${removal}`,
    ].join('\n'));
    return file;
  }

  async function build(name: string, ...flags: string[]): Promise<CliResult> {
    const r = await cli(['build', path.join(defs, `${name}.yml`), ...flags]);
    times.push(`${name}${flags.length ? ` ${flags.filter((f) => f.startsWith('--')).join(' ')}` : ''}: ${r.seconds.toFixed(1)} s`);
    if (r.code === 0 && flags.includes('--json')) for (const t of (JSON.parse(r.stdout) as Summary).tags) refs.add(t);
    if (r.code === 0) images.add((await idOf(`${repo}:${name}`))!);
    return r;
  }

  const idOf = async (ref: string) => (await inspectImage(docker, ref))?.Id;

  before(async () => {
    await ensureEngine(docker);
    sh('bash', [path.join(PROJECT_ROOT, '..', 'shared', 'ci', 'node-base-image.sh')]);
    const port = await freePort();
    registryPid = Number(sh('bash', [path.join(PROJECT_ROOT, '..', 'shared', 'ci', 'registry-up.sh'), String(port)], 120_000).split('\n').pop());
    repo = `127.0.0.1:${port}/epr-it-stages/distribution`;
    layer = tmpDir('epr-it-stage-layer-');
    defs = tmpDir('epr-it-stage-defs-');
    writeDirPackage(layer, { name: 'stage_pkg', version: '1.0.0' });
    writeDirPackage(layer, { name: 'stage_pkg', version: '1.1.0' });
    writeDirPackage(layer, { name: 'other_pkg', version: '0.1.0' });
    definition('itstaging', 'flag', 'flag');
    definition('itprod', 'never', 'never');
  });

  after(async () => {
    for (const ref of refs) await untag(docker, ref).catch(() => undefined);
    for (const id of images) await untag(docker, id).catch(() => undefined);
    if (registryPid) try { process.kill(registryPid); } catch { /* gone */ }
    cleanupTmp();
    process.stdout.write(`      build times: ${times.join(', ')}\n`);
  });

  it('first builds: nothing published yet, no constraint; the image holds its package list and digest label', async () => {
    for (const name of ['itstaging', 'itprod']) {
      const r = await build(name, '--json');
      expect(r.code, r.stderr).to.equal(0);
      const s = JSON.parse(r.stdout) as Summary;
      expect(s.vsPublished).to.equal(undefined);
      const list = await readBakedList(docker, s.image);
      expect(list!.packages.map((p) => `${p.name}@${p.version}`)).to.deep.equal(['other_pkg@0.1.0', 'stage_pkg@1.0.0', 'stage_pkg@1.1.0']);
      expect(list!.packages[0]).to.have.keys('name', 'version', 'hash', 'layer');
      expect((await inspectImage(docker, s.image))!.Config.Labels![`${LABEL}.packages-digest`]).to.equal(list!.packagesDigest);
    }
    // kept for the diff below
    await tagImage(docker, (await idOf(`${repo}:itstaging`))!, `${repo}:itstaging-v1`);
    refs.add(`${repo}:itstaging-v1`);
    const again = await build('itstaging');
    expect(again.code, again.stderr).to.equal(0);
    expect(again.stdout).to.match(/vs published: \+0 added, -0 removed, ~0 changed, size [+-]\d+\.\d MB/);
  });

  it('same version, other content: staging refuses without --allow-overwrite (tag unchanged), allows with it', async () => {
    fs.appendFileSync(path.join(layer, 'stage_pkg', '1.0.0', 'docs', 'README.md'), '\nchanged after publishing\n');
    const before = await idOf(`${repo}:itstaging`);
    const refused = await build('itstaging');
    expect(refused.code, refused.stdout + refused.stderr).to.equal(1);
    const lines = refused.stderr.trim().split('\n');
    expect(lines[0]).to.match(/^error: stage policy of itstaging: 1 package\(s\) break it against .*itstaging .*nothing was built, tagged or pushed$/);
    expect(lines.slice(1)).to.have.length(1);
    expect(lines[1]).to.match(/^ {2}- stage_pkg 1\.0\.0: content changed .*only with --allow-overwrite$/);
    expect(await idOf(`${repo}:itstaging`)).to.equal(before);

    const allowed = await build('itstaging', '--allow-overwrite', '--json');
    expect(allowed.code, allowed.stderr).to.equal(0);
    const s = JSON.parse(allowed.stdout) as Summary;
    expect(s.vsPublished).to.deep.include({ source: 'local', added: 0, removed: 0, changed: 1 });
    expect((await inspectImage(docker, s.image))!.Config.Labels![`${LABEL}.policy-overrides`]).to.equal('overwrite');
  });

  it('production-like: an overwrite is refused even with --allow-overwrite', async () => {
    const before = await idOf(`${repo}:itprod`);
    const r = await build('itprod', '--allow-overwrite', '--allow-removal', '--reason', 'try');
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(/- stage_pkg 1\.0\.0: content changed .*itprod never overwrites a published version \(not even with --allow-overwrite\)/);
    expect(await idOf(`${repo}:itprod`)).to.equal(before);
  });

  it('a removed version: staging refuses it, also with --allow-removal alone; --allow-removal --reason passes and the reason is on the image', async () => {
    fs.rmSync(path.join(layer, 'other_pkg'), { recursive: true });
    const before = await idOf(`${repo}:itstaging`);
    const refused = await build('itstaging');
    expect(refused.code).to.equal(1);
    expect(refused.stderr).to.match(/- other_pkg 0\.1\.0: removed .*only with --allow-removal --reason/);
    const noReason = await build('itstaging', '--allow-removal');
    expect(noReason.code).to.equal(1);
    expect(noReason.stderr).to.match(/- other_pkg 0\.1\.0: removed .*--allow-removal also needs --reason/);
    expect(await idOf(`${repo}:itstaging`)).to.equal(before);

    const ok = await build('itstaging', '--allow-removal', '--reason', 'withdrawn: broken ingest pipeline', '--json');
    expect(ok.code, ok.stderr).to.equal(0);
    const s = JSON.parse(ok.stdout) as Summary;
    expect(s.vsPublished).to.deep.include({ added: 0, removed: 1, changed: 0 });
    const labels = (await inspectImage(docker, s.image))!.Config.Labels!;
    expect(labels[`${LABEL}.policy-reason`]).to.equal('withdrawn: broken ingest pipeline');
    expect(labels[`${LABEL}.policy-overrides`]).to.equal('removal');
  });

  it('production-like: a removal and a version below the newest published one are refused, even with the flags', async () => {
    // the layer lost other_pkg 0.1.0 and stage_pkg 1.0.0 changed: both refused, one line each
    writeDirPackage(layer, { name: 'stage_pkg', version: '1.0.5' });
    const r = await build('itprod', '--allow-removal', '--reason', 'no');
    expect(r.code).to.equal(1);
    const lines = r.stderr.trim().split('\n').slice(1);
    expect(lines.map((l) => l.replace(/:.*/, ''))).to.deep.equal(['  - stage_pkg 1.0.0', '  - other_pkg 0.1.0', '  - stage_pkg 1.0.5']);
    expect(lines[2]).to.match(/added below the newest published version 1\.1\.0: itprod only adds newer versions/);
  });

  it('diff:distribution between two images: added, removed, changed and the size delta', async () => {
    const r = await cli(['diff', `${repo}:itstaging-v1`, 'itstaging', '--repository', repo, '--json']);
    expect(r.code, r.stderr).to.equal(0);
    const d = JSON.parse(r.stdout) as { added: unknown[]; removed: Array<{ name: string; version: string }>; changed: Array<{ name: string; version: string }>; sizeDelta: number; b: { ref: string } };
    expect(d.b.ref).to.equal(`${repo}:itstaging`);
    expect(d.added).to.deep.equal([]);
    expect(d.removed.map((p) => `${p.name}@${p.version}`)).to.deep.equal(['other_pkg@0.1.0']);
    expect(d.changed.map((p) => `${p.name}@${p.version}`)).to.deep.equal(['stage_pkg@1.0.0']);
    expect(d.sizeDelta).to.be.a('number');
    const human = await cli(['diff', `${repo}:itstaging-v1`, `${repo}:itstaging`]);
    expect(human.code, human.stderr).to.equal(0);
    // the summary line, one line of sizes per package layer (A -> B), then the packages
    expect(human.stdout).to.match(/: \+0 added, -1 removed, ~1 changed, size [+-]\d+\.\d MB, 1 unchanged\n( {2}layer \w+: .* -> .*\n)+ {2}- other_pkg 0\.1\.0 \(main\)\n {2}~ stage_pkg 1\.0\.0: /);
    const missing = await cli(['diff', `${repo}:itstaging-v1`, `${repo}:no-such-tag`, '--source', 'local']);
    expect(missing.code).to.equal(1);
    expect(missing.stderr).to.match(/^error: cannot read the package list of .*no-such-tag: no image/);
  });

  it('the published list is read from the registry when the local image is gone (and the local tag stays gone)', async () => {
    fs.rmSync(path.join(layer, 'stage_pkg', '1.0.5'), { recursive: true });
    await pushImage(docker, `${repo}:itstaging`);
    await untag(docker, `${repo}:itstaging`);
    expect(await idOf(`${repo}:itstaging`)).to.equal(undefined);
    fs.appendFileSync(path.join(layer, 'stage_pkg', '1.1.0', 'docs', 'README.md'), '\nchanged again\n');

    const refused = await build('itstaging');
    expect(refused.code, refused.stdout).to.equal(1);
    expect(refused.stderr).to.match(/against .*itstaging \(registry, [0-9a-f]{12}\)/);
    expect(refused.stderr).to.match(/- stage_pkg 1\.1\.0: content changed .*--allow-overwrite/);
    expect(await idOf(`${repo}:itstaging`), 'reading the registry leaves no local tag behind').to.equal(undefined);

    const forced = await build('itstaging', '--published-from', 'registry', '--allow-overwrite', '--json');
    expect(forced.code, forced.stderr).to.equal(0);
    expect((JSON.parse(forced.stdout) as Summary).vsPublished).to.deep.include({ source: 'registry', changed: 1 });

    // a registry that does not answer: an error with --published-from registry
    const dead = `127.0.0.1:${await freePort()}/epr-it-stages/distribution`;
    const r = await cli(['build', path.join(defs, 'itstaging.yml'), '--repository', dead, '--published-from', 'registry']);
    expect(r.code).to.equal(1);
    expect(r.stderr.split('\n')[0]).to.match(/^error: docker pull .* failed/);
    expect(await idOf(`${dead}:itstaging`)).to.equal(undefined);
  });
});
