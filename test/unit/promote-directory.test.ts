import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { promote, type Step } from '../../builder/stages/promote.js';
import { PromotionError } from '../../builder/stages/layer.js';
import { directionProblem, parsePackageId } from '../../builder/stages/stages.js';
import { main } from '../../builder/stages/cli.js';
import { stageLayerDef } from '../../builder/stages/locate.js';
import { cleanupTmp, tmpDir, writeDirPackage, writeZipPackage } from '../helpers/fixtures.js';

/** Three folder layers and a snapshot.yml that lists them, as distributions/ does. */
function stageFolders(): { defs: string; layer: Record<'snapshot' | 'staging' | 'production', string> } {
  const root = tmpDir('promote-dir-');
  const layer = { snapshot: path.join(root, 'layers/snapshot'), staging: path.join(root, 'layers/staging'), production: path.join(root, 'layers/production') };
  for (const d of Object.values(layer)) fs.mkdirSync(d, { recursive: true });
  const defs = path.join(root, 'distributions');
  fs.mkdirSync(defs);
  fs.writeFileSync(path.join(defs, 'snapshot.yml'), `name: snapshot
image:
  repository: localhost:5000/package-registry/distribution
package_registry:
  version: 1.40.1
layers:
  - name: production
    source: { directory: ../layers/production }
  - name: staging
    source: { directory: ../layers/staging }
  - name: snapshot
    source: { directory: ../layers/snapshot }
`);
  return { defs, layer };
}

/** Every file below `root` with its bytes, for "nothing changed" checks. */
function snapshotTree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const visit = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const abs = path.join(dir, e.name);
      if (e.isDirectory()) { out[`${path.relative(root, abs)}/`] = ''; visit(abs); } else out[path.relative(root, abs)] = fs.readFileSync(abs).toString('base64');
    }
  };
  visit(root);
  return out;
}

async function refused(p: Promise<unknown>): Promise<PromotionError> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(PromotionError);
    return err as PromotionError;
  }
  throw new Error('expected the promotion to be refused');
}

const foo = { name: 'foo', version: '1.2.3', files: { 'img/logo.svg': '<svg/>', 'LICENSE.txt': 'MIT\n' } };

describe('promote: directory layers', () => {
  after(cleanupTmp);

  it('snapshot -> staging -> production: the package moves, its files unchanged, one step line at a time', async () => {
    const { defs, layer } = stageFolders();
    const src = writeDirPackage(layer.snapshot, foo);
    const before = snapshotTree(src);
    const steps: Step[] = [];
    const r = await promote({ package: 'foo-1.2.3', from: 'snapshot', to: 'staging', definitions: defs, onStep: (s) => steps.push(s) });
    expect(r.action).to.equal('promoted');
    expect(r.kind).to.equal('directory');
    expect(fs.existsSync(path.join(layer.snapshot, 'foo'))).to.equal(false, 'the emptied <name>/ folder goes too');
    expect(snapshotTree(path.join(layer.staging, 'foo/1.2.3'))).to.deep.equal(before);
    expect(steps.map((s) => s.step)).to.deep.equal(['check', 'check', 'copy', 'verify', 'remove']);
    // no temporary names left behind
    expect(fs.readdirSync(layer.staging)).to.deep.equal(['foo']);
    expect(fs.readdirSync(path.join(layer.staging, 'foo'))).to.deep.equal(['1.2.3']);

    const r2 = await promote({ package: 'foo-1.2.3', from: 'staging', to: 'production', definitions: defs });
    expect(r2.hash).to.equal(r.hash);
    expect(fs.existsSync(path.join(layer.staging, 'foo'))).to.equal(false);
    expect(snapshotTree(path.join(layer.production, 'foo/1.2.3'))).to.deep.equal(before);
  });

  it('keeps the other versions of the package and the layer-relative place', async () => {
    const { defs, layer } = stageFolders();
    writeDirPackage(path.join(layer.snapshot, 'team-a'), foo);
    writeDirPackage(path.join(layer.snapshot, 'team-a'), { ...foo, version: '1.3.0' });
    await promote({ package: 'foo-1.2.3', from: 'snapshot', to: 'staging', definitions: defs });
    expect(fs.existsSync(path.join(layer.staging, 'team-a/foo/1.2.3/manifest.yml'))).to.equal(true);
    expect(fs.readdirSync(path.join(layer.snapshot, 'team-a/foo'))).to.deep.equal(['1.3.0']);
  });

  it('a zip travels with its signature', async () => {
    const { defs, layer } = stageFolders();
    const zip = await writeZipPackage(layer.snapshot, foo);
    const bytes = fs.readFileSync(zip);
    const sig = fs.readFileSync(`${zip}.sig`);
    const r = await promote({ package: 'foo-1.2.3', from: 'snapshot', to: 'staging', definitions: defs });
    expect(r.kind).to.equal('zip');
    expect(fs.readdirSync(layer.snapshot)).to.deep.equal([]);
    expect(fs.readFileSync(path.join(layer.staging, 'foo-1.2.3.zip')).equals(bytes)).to.equal(true);
    expect(fs.readFileSync(path.join(layer.staging, 'foo-1.2.3.zip.sig')).equals(sig)).to.equal(true);
  });

  it('refuses a zip without its signature', async () => {
    const { defs, layer } = stageFolders();
    await writeZipPackage(layer.snapshot, foo, { signature: false });
    const err = await refused(promote({ package: 'foo-1.2.3', from: 'snapshot', to: 'staging', definitions: defs }));
    expect(err.code).to.equal('invalid-package');
    expect(err.message).to.match(/\.sig is missing/);
    expect(fs.readdirSync(layer.staging)).to.deep.equal([]);
  });

  it('--dry-run prints the plan and changes nothing', async () => {
    const { defs, layer } = stageFolders();
    writeDirPackage(layer.snapshot, foo);
    const root = path.dirname(layer.snapshot);
    const before = snapshotTree(root);
    const r = await promote({ package: 'foo-1.2.3', from: 'snapshot', to: 'staging', definitions: defs, dryRun: true });
    expect(r.dryRun).to.equal(true);
    expect(r.plan.join('\n')).to.match(/copy to .*staging\/foo\/1\.2\.3/).and.match(/delete .*snapshot\/foo\/1\.2\.3/);
    expect(snapshotTree(root)).to.deep.equal(before);
  });

  it('an unknown package is refused with its name and the layer', async () => {
    const { defs, layer } = stageFolders();
    writeDirPackage(layer.snapshot, foo);
    const err = await refused(promote({ package: 'foo-9.9.9', from: 'snapshot', to: 'staging', definitions: defs }));
    expect(err.code).to.equal('unknown-package');
    expect(err.message).to.include('foo-9.9.9').and.include(layer.snapshot).and.include('snapshot has foo 1.2.3');
    const none = await refused(promote({ package: 'bar-1.0.0', from: 'snapshot', to: 'staging', definitions: defs }));
    expect(none.message).to.match(/snapshot has no version of bar$/);
  });

  it('a different copy already in the target: refused, nothing changed', async () => {
    const { defs, layer } = stageFolders();
    writeDirPackage(layer.snapshot, foo);
    writeDirPackage(layer.staging, { ...foo, title: 'Another foo' });
    const root = path.dirname(layer.snapshot);
    const before = snapshotTree(root);
    const err = await refused(promote({ package: 'foo-1.2.3', from: 'snapshot', to: 'staging', definitions: defs }));
    expect(err.code).to.equal('conflict');
    expect(err.message).to.match(/already in staging .*different content/);
    expect(snapshotTree(root)).to.deep.equal(before);
  });

  it('the same copy already in the target (an interrupted promotion): only the removal is done', async () => {
    const { defs, layer } = stageFolders();
    writeDirPackage(layer.snapshot, foo);
    // a zip with the same files counts as the same content
    await writeZipPackage(layer.staging, foo);
    const before = snapshotTree(layer.staging);
    const r = await promote({ package: 'foo-1.2.3', from: 'snapshot', to: 'staging', definitions: defs });
    expect(r.action).to.equal('finished');
    expect(fs.readdirSync(layer.snapshot)).to.deep.equal([]);
    expect(snapshotTree(layer.staging)).to.deep.equal(before);
    // and once more: nothing left to do, still exit 0
    const again = await promote({ package: 'foo-1.2.3', from: 'snapshot', to: 'staging', definitions: defs });
    expect(again.action).to.equal('already-promoted');
  });

  it('wrong directions are refused with the reason', async () => {
    const { defs, layer } = stageFolders();
    writeDirPackage(layer.production, foo);
    const back = await refused(promote({ package: 'foo-1.2.3', from: 'production', to: 'snapshot', definitions: defs }));
    expect(back.code).to.equal('direction');
    expect(back.message).to.match(/goes backwards: packages only move towards production/);
    expect(directionProblem('snapshot', 'production')).to.match(/skips staging: promote one stage at a time/);
    expect(directionProblem('staging', 'staging')).to.match(/both staging/);
    expect(directionProblem('staging', 'production')).to.equal(undefined);
    expect(fs.existsSync(path.join(layer.production, 'foo/1.2.3/manifest.yml'))).to.equal(true);
  });

  it('a copy that fails verification is taken back out: the package stays in the source, never in neither', async () => {
    const { defs, layer } = stageFolders();
    const src = writeDirPackage(layer.snapshot, foo);
    const before = snapshotTree(src);
    const steps: Step[] = [];
    const err = await refused(promote({
      package: 'foo-1.2.3', from: 'snapshot', to: 'staging', definitions: defs, onStep: (s) => steps.push(s),
      // the copy in the target is damaged between the copy and its verification
      hooks: { afterAdd: () => fs.appendFileSync(path.join(layer.staging, 'foo/1.2.3/LICENSE.txt'), 'tampered') },
    }));
    expect(err.code).to.equal('verify-failed');
    expect(err.message).to.match(/content hash .* is not .*still in snapshot/);
    expect(snapshotTree(src)).to.deep.equal(before);
    expect(fs.readdirSync(layer.staging)).to.deep.equal([]);
    expect(steps.map((s) => s.step)).to.deep.equal(['check', 'check', 'copy', 'undo']);
  });

  it('a crash after the verification leaves it in both; the re-run finishes', async () => {
    const { defs, layer } = stageFolders();
    writeDirPackage(layer.snapshot, foo);
    const err = await refused(promote({ package: 'foo-1.2.3', from: 'snapshot', to: 'staging', definitions: defs, hooks: { beforeRemove: () => { throw new PromotionError('io', 'power cut'); } } }));
    expect(err.message).to.match(/is in staging and verified, but removing it from snapshot failed: power cut\. Run the same command again/);
    expect(fs.existsSync(path.join(layer.snapshot, 'foo/1.2.3/manifest.yml'))).to.equal(true);
    expect(fs.existsSync(path.join(layer.staging, 'foo/1.2.3/manifest.yml'))).to.equal(true);
    const r = await promote({ package: 'foo-1.2.3', from: 'snapshot', to: 'staging', definitions: defs });
    expect(r.action).to.equal('finished');
    expect(fs.existsSync(path.join(layer.snapshot, 'foo'))).to.equal(false);
  });

  it('an invalid package is not promoted', async () => {
    const { defs, layer } = stageFolders();
    writeDirPackage(layer.snapshot, { ...foo, readme: false });
    const err = await refused(promote({ package: 'foo-1.2.3', from: 'snapshot', to: 'staging', definitions: defs }));
    expect(err.code).to.equal('invalid-package');
    expect(err.message).to.match(/docs\/README\.md: file is missing/);
  });
});

describe('promote: where the stage layers are', () => {
  after(cleanupTmp);

  it('a stage missing from snapshot.yml is read from its own definition; --distribution picks one', async () => {
    const root = tmpDir('promote-defs-');
    const defs = path.join(root, 'distributions');
    fs.mkdirSync(defs);
    const def = (name: string, layers: string[]) => fs.writeFileSync(path.join(defs, `${name}.yml`), `name: ${name}
image: { repository: localhost:5000/package-registry/distribution }
package_registry: { version: 1.40.1 }
layers:
${layers.map((l) => `  - { name: ${l}, source: { directory: ../${name}-${l} } }\n`).join('')}`);
    def('staging', ['production', 'staging']);
    def('production', ['production']);
    expect(stageLayerDef('staging', { definitions: defs }).source).to.deep.equal({ kind: 'directory', directory: path.join(root, 'staging-staging') });
    expect(stageLayerDef('production', { definitions: defs }).source).to.deep.equal({ kind: 'directory', directory: path.join(root, 'production-production') });
    expect(stageLayerDef('production', { definitions: defs, distribution: 'staging' }).source).to.deep.equal({ kind: 'directory', directory: path.join(root, 'staging-production') });
    expect(() => stageLayerDef('snapshot', { definitions: defs })).to.throw(/no layer named "snapshot" in .*snapshot\.yml \(no such file\)$/);
    expect(() => stageLayerDef('snapshot', { definitions: defs, distribution: 'production' })).to.throw(/has no layer named "snapshot" \(it has production\)/);
    // a missing layer folder is said before anything happens
    const err = await refused(promote({ package: 'foo-1.2.3', from: 'staging', to: 'production', definitions: defs }));
    expect(err.code).to.equal('layer-missing');
  });
});

describe('promote: command line', () => {
  after(cleanupTmp);

  const run = async (argv: string[]) => {
    let out = '';
    let err = '';
    const code = await main(argv, (s) => { out += s; }, (s) => { err += s; });
    return { code, out, err };
  };

  it('exit codes: 0 done, 1 refused, 2 usage', async () => {
    const { defs, layer } = stageFolders();
    writeDirPackage(layer.snapshot, foo);
    const dry = await run(['promote', 'foo-1.2.3', '--from', 'snapshot', '--to', 'staging', '--definitions', defs, '--dry-run']);
    expect(dry.code).to.equal(0);
    expect(dry.out.trim().split('\n').pop()).to.match(/^dry run: would promote foo 1\.2\.3 .* from snapshot to staging; nothing changed$/);
    const bad = await run(['promote', 'foo-1.2.3', '--from', 'snapshot', '--to', 'production', '--definitions', defs]);
    expect(bad.code).to.equal(1);
    expect(bad.err).to.match(/^error: snapshot → production skips staging/);
    expect((await run(['promote', 'foo-1.2.3', '--from', 'snapshot'])).code).to.equal(2);
    expect((await run(['promote', 'foo-1.2.3', '--from', 'qa', '--to', 'staging'])).err).to.match(/"qa" is not a stage/);
    expect((await run(['promote', '--help'])).out).to.match(/^Usage: promote <name>-<version>/);
    const json = await run(['promote', 'foo-1.2.3', '--from', 'snapshot', '--to', 'staging', '--definitions', defs, '--json']);
    expect(json.code).to.equal(0);
    const parsed = JSON.parse(json.out) as { ok: boolean; action: string; steps: unknown[] };
    expect(parsed).to.include({ ok: true, action: 'promoted' });
    expect(parsed.steps).to.have.length(5);
    const again = await run(['promote', 'foo-1.2.3', '--from', 'staging', '--to', 'snapshot', '--definitions', defs, '--json']);
    expect(again.code).to.equal(1);
    expect(JSON.parse(again.out)).to.deep.include({ ok: false }).and.have.nested.property('error.code', 'direction');
  });

  it('package ids: <name>-<version> with pre-release versions', () => {
    expect(parsePackageId('nginx_lite-2.0.0-beta1')).to.deep.equal({ name: 'nginx_lite', version: '2.0.0-beta1' });
    expect(parsePackageId('foo@1.0.0')).to.deep.equal({ name: 'foo', version: '1.0.0' });
    expect(parsePackageId('foo-1.0')).to.equal(undefined);
    expect(parsePackageId('Foo-1.0.0')).to.equal(undefined);
  });
});
