import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { InvalidPackagesError, mergeLayers, type LayerContribution } from '../../builder/merge.js';
import { FIXED_MTIME } from '../../builder/tar.js';
import { bakedIndexHead } from '../../server/packages/baked.js';
import type { MaterialisedLayer } from '../../builder/sources.js';
import { spawnSync } from 'node:child_process';
import { materialiseLayer } from '../../builder/sources.js';
import { cleanupTmp, tmpDir, writeDirPackage, writeZipPackage } from '../helpers/fixtures.js';

/** Layers staged as the builder stages them: <root>/packages/<name>/ */
function stage(names: string[]): MaterialisedLayer[] {
  const base = tmpDir('merge-');
  return names.map((name) => {
    const root = path.join(base, name);
    const dir = path.join(root, 'packages', name);
    fs.mkdirSync(dir, { recursive: true });
    return { name, dir, commit: 'c'.repeat(40), repo: base, origin: `/src/${name}`, kind: 'directory', dirty: false };
  });
}

const names = (c: LayerContribution) => c.entries.map((e) => e.name);

describe('builder: merging layers', () => {
  after(cleanupTmp);

  it('leaves out copies hidden by an earlier layer, reports them with both hashes', async () => {
    const [prod, stg] = stage(['production', 'staging']);
    writeDirPackage(prod.dir, { name: 'a', version: '1.0.0', title: 'A production' });
    writeDirPackage(stg.dir, { name: 'a', version: '1.0.0', title: 'A staging' });
    writeDirPackage(stg.dir, { name: 'a', version: '1.1.0' });
    const m = await mergeLayers('staging', [prod, stg]);
    expect(m.served.map((p) => `${p.name}@${p.version}:${p.layer}`)).to.deep.equal(['a@1.0.0:production', 'a@1.1.0:staging']);
    expect(m.contributions[1].packages.map((p) => p.version)).to.deep.equal(['1.1.0']);
    expect(m.contributions[1].entries.some((e) => e.name.includes('a/1.0.0'))).to.equal(false);
    expect(m.report.shadowed).to.have.length(1);
    const s = m.report.shadowed[0];
    expect([s.winner.layer, s.hidden.layer, s.differs]).to.deep.equal(['production', 'staging', true]);
    expect(s.winner.hash).to.match(/^sha256:/).and.not.equal(s.hidden.hash);
  });

  it('a later zip beats an earlier folder, and the earlier layer still keeps its copy (layers depend only on earlier ones)', async () => {
    const [prod, stg] = stage(['production', 'staging']);
    writeDirPackage(prod.dir, { name: 'b', version: '2.0.0' });
    await writeZipPackage(stg.dir, { name: 'b', version: '2.0.0' });
    const alone = await mergeLayers('production', [stage(['production'])[0]].map((l) => { writeDirPackage(l.dir, { name: 'b', version: '2.0.0' }); return l; }));
    const m = await mergeLayers('staging', [prod, stg]);
    expect(m.served.map((p) => `${p.name}@${p.version}:${p.kind}:${p.layer}`)).to.deep.equal(['b@2.0.0:zip:staging']);
    expect(names(m.contributions[0])).to.deep.equal(names(alone.contributions[0]));
    // the same files elsewhere on disk: the same layer key
    expect(m.contributions[0].key).to.equal(alone.contributions[0].key);
    expect(names(m.contributions[1])).to.include.members(['packages/staging/b-2.0.0.zip', 'packages/staging/b-2.0.0.zip.sig']);
    expect(m.report.shadowed[0]).to.deep.include({ differs: false });
  });

  it('identical copies are reported as identical', async () => {
    const [prod, stg] = stage(['production', 'staging']);
    writeDirPackage(prod.dir, { name: 'c', version: '1.0.0' });
    writeDirPackage(stg.dir, { name: 'c', version: '1.0.0' });
    expect((await mergeLayers('staging', [prod, stg])).report.shadowed[0].differs).to.equal(false);
  });

  it('an invalid package fails the merge, naming the source file and field', async () => {
    const [prod] = stage(['production']);
    writeDirPackage(prod.dir, { name: 'd', version: '1.0.0', omit: ['title'] });
    await writeZipPackage(prod.dir, { name: 'e', version: '1.0.0' }, { signature: false });
    try {
      await mergeLayers('production', [prod]);
      expect.fail('expected InvalidPackagesError');
    } catch (err) {
      expect(err).to.be.instanceOf(InvalidPackagesError);
      const problems = (err as InvalidPackagesError).problems;
      expect(problems).to.include('layer production: /src/production/d/1.0.0/manifest.yml: title: is required');
      expect(problems).to.include('layer production: /src/production/e-1.0.0.zip.sig: signature is missing');
    }
  });

  it('each layer tar holds its baked index, stamped with the tar\'s fixed time, and parents before children', async () => {
    const [prod] = stage(['production']);
    writeDirPackage(prod.dir, { name: 'f', version: '1.0.0' });
    const c = (await mergeLayers('production', [prod])).contributions[0];
    expect(names(c).slice(0, 3)).to.deep.equal(['packages', 'packages/production', 'packages/production/.epr-index']);
    const index = c.entries.find((e) => e.name.endsWith('.epr-index'));
    const packages = bakedIndexHead((index as { data: Buffer }).data);
    const size = fs.statSync(path.join(prod.dir, 'f', '1.0.0', 'manifest.yml')).size;
    expect(packages).to.have.length(1);
    expect(packages[0]).to.include({ location: 'f/1.0.0', stamp: `${size}:${FIXED_MTIME.getTime()}` });
  });

  it('with a cache, unchanged packages are not read again, and a changed file changes the layer key', async () => {
    const [prod] = stage(['production']);
    const cacheDir = tmpDir('merge-cache-');
    writeDirPackage(prod.dir, { name: 'g', version: '1.0.0' });
    writeDirPackage(prod.dir, { name: 'h', version: '1.0.0' });
    const lines: string[] = [];
    const log = (l: string) => lines.push(l);
    const first = await mergeLayers('production', [prod], { cacheDir, log });
    const second = await mergeLayers('production', [prod], { cacheDir, log });
    expect(lines).to.deep.equal(['layer production: 2 packages, 0 unchanged since the last build', 'layer production: 2 packages, 2 unchanged since the last build']);
    expect(second.contributions[0].key).to.equal(first.contributions[0].key);
    expect(second.served).to.deep.equal(first.served);

    const readme = path.join(prod.dir, 'h', '1.0.0', 'docs', 'README.md');
    fs.appendFileSync(readme, 'one more line\n');
    const third = await mergeLayers('production', [prod], { cacheDir, log });
    expect(lines[2]).to.equal('layer production: 2 packages, 1 unchanged since the last build');
    expect(third.contributions[0].key).to.not.equal(first.contributions[0].key);
    expect(third.served.find((p) => p.name === 'h')!.hash).to.not.equal(first.served.find((p) => p.name === 'h')!.hash);
    // --no-cache reads everything again and agrees
    const fresh = await mergeLayers('production', [prod], { cacheDir, readCache: false, log });
    expect(lines[3]).to.equal('layer production: 2 packages, 0 unchanged since the last build');
    expect(fresh.contributions[0].key).to.equal(third.contributions[0].key);
  });

  it('an unwritable package cache is reported, and the merge still succeeds', async () => {
    const [prod] = stage(['production']);
    writeDirPackage(prod.dir, { name: 'n', version: '1.0.0' });
    const notADir = path.join(tmpDir('merge-cache-file-'), 'cache');
    fs.writeFileSync(notADir, 'x');
    const lines: string[] = [];
    const m = await mergeLayers('production', [prod], { cacheDir: notADir, log: (l) => lines.push(l) });
    expect(m.served.map((p) => p.name)).to.deep.equal(['n']);
    expect(lines[0]).to.match(/^layer production: 1 packages, 0 unchanged since the last build; package cache not written \(/);
  });

  it('a package made invalid after it was cached fails the merge', async () => {
    const [prod] = stage(['production']);
    const cacheDir = tmpDir('merge-cache-');
    writeDirPackage(prod.dir, { name: 'k', version: '1.0.0' });
    await mergeLayers('production', [prod], { cacheDir });
    const manifest = path.join(prod.dir, 'k', '1.0.0', 'manifest.yml');
    fs.writeFileSync(manifest, fs.readFileSync(manifest, 'utf8').replace(/^title:.*$/m, ''));
    try {
      await mergeLayers('production', [prod], { cacheDir });
      expect.fail('expected InvalidPackagesError');
    } catch (err) {
      expect(err).to.be.instanceOf(InvalidPackagesError);
      expect((err as InvalidPackagesError).problems.join('\n')).to.include('title: is required');
    }
  });

  it('a git layer is read from its extracted tree once; the next builds of that tree take it from the cache', async () => {
    const repo = tmpDir('merge-git-');
    const g = (...args: string[]) => {
      const r = spawnSync('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(r.stderr);
    };
    writeDirPackage(repo, { name: 'm', version: '1.0.0' });
    g('init', '-q', '-b', 'main');
    g('add', '.');
    g('commit', '-q', '-m', 'one');
    const cacheDir = tmpDir('merge-git-cache-');
    const layer = { name: 'production', source: { kind: 'git' as const, repo, ref: 'main', path: '' } };
    const lines: string[] = [];
    const merge = async () => mergeLayers('production', [await materialiseLayer(layer, { work: tmpDir('merge-git-work-'), cacheDir })], { cacheDir, log: (l) => lines.push(l) });
    const first = await merge();
    const second = await merge();
    expect(lines).to.deep.equal(['layer production: 1 packages, 0 unchanged since the last build', 'layer production: 1 packages, 1 unchanged since the last build']);
    expect(second.contributions[0].key).to.equal(first.contributions[0].key);
    expect(second.contributions[0].entries.map((e) => e.name)).to.deep.equal(first.contributions[0].entries.map((e) => e.name));
    fs.appendFileSync(path.join(repo, 'm', '1.0.0', 'docs', 'README.md'), 'more\n');
    g('commit', '-q', '-am', 'two');
    const third = await merge();
    expect(lines[2]).to.equal('layer production: 1 packages, 0 unchanged since the last build');
    expect(third.contributions[0].key).to.not.equal(first.contributions[0].key);
  });
});
