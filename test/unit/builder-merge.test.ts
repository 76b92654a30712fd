import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { InvalidPackagesError, mergeLayers } from '../../builder/merge.js';
import type { MaterialisedLayer } from '../../builder/sources.js';
import { cleanupTmp, tmpDir, writeDirPackage, writeZipPackage } from '../helpers/fixtures.js';

/** Layers staged as the builder stages them: <root>/packages/<name>/ */
function stage(names: string[]): Array<MaterialisedLayer & { root: string }> {
  const base = tmpDir('merge-');
  return names.map((name) => {
    const root = path.join(base, name);
    const dir = path.join(root, 'packages', name);
    fs.mkdirSync(dir, { recursive: true });
    return { name, root, dir, commit: 'c'.repeat(40), repo: base, origin: `/src/${name}`, kind: 'directory', dirty: false };
  });
}

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
    expect(m.contributions[1].entries.some((e) => e.includes('a/1.0.0'))).to.equal(false);
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
    expect(m.contributions[0].entries).to.deep.equal(alone.contributions[0].entries);
    expect(m.contributions[1].entries).to.include.members(['packages/staging/b-2.0.0.zip', 'packages/staging/b-2.0.0.zip.sig']);
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
});
