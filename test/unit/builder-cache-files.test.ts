import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { keepRecent, markUsed, writeCacheFile } from '../../builder/cache-files.js';
import { KEEP_PACKAGE_CACHES, LayerCache } from '../../builder/package-cache.js';
import { cleanupTmp, tmpDir } from '../helpers/fixtures.js';

const age = (file: string, seconds: number) => fs.utimesSync(file, 1_700_000_000 + seconds, 1_700_000_000 + seconds);

describe('builder: cache files', () => {
  after(cleanupTmp);

  it('writeCacheFile writes a file whole, or says why not and leaves nothing behind', () => {
    const dir = tmpDir('cache-file-');
    expect(writeCacheFile(path.join(dir, 'sub', 'a.json'), '{"a":1}')).to.equal(undefined);
    expect(fs.readFileSync(path.join(dir, 'sub', 'a.json'), 'utf8')).to.equal('{"a":1}');
    const blocker = path.join(dir, 'file');
    fs.writeFileSync(blocker, '');
    expect(writeCacheFile(path.join(blocker, 'b.json'), '{}')).to.be.a('string');
    expect(fs.readdirSync(dir).sort()).to.deep.equal(['file', 'sub']);
    expect(fs.readdirSync(path.join(dir, 'sub'))).to.deep.equal(['a.json']);
  });

  it('keeps the most recently used entries with the suffix; markUsed makes an old one recent', () => {
    const dir = tmpDir('prune-');
    for (let i = 0; i < 6; i++) {
      fs.writeFileSync(path.join(dir, `e${i}.json`), '{}');
      age(path.join(dir, `e${i}.json`), i);
    }
    fs.writeFileSync(path.join(dir, 'other.txt'), '');
    markUsed(path.join(dir, 'e0.json'));
    keepRecent(dir, '.json', 3);
    expect(fs.readdirSync(dir).sort()).to.deep.equal(['e0.json', 'e4.json', 'e5.json', 'other.txt']);
  });

  it('drop decides what goes with an entry; a missing folder is nothing to prune', () => {
    const dir = tmpDir('prune-');
    for (let i = 0; i < 3; i++) {
      fs.mkdirSync(path.join(dir, `t${i}`));
      fs.writeFileSync(path.join(dir, `t${i}.done`), '');
      age(path.join(dir, `t${i}.done`), i);
    }
    keepRecent(dir, '.done', 1, (marker) => { fs.rmSync(marker); fs.rmSync(marker.slice(0, -5), { recursive: true }); });
    expect(fs.readdirSync(dir).sort()).to.deep.equal(['t2', 't2.done']);
    expect(() => keepRecent(path.join(dir, 'none'), '.json', 1)).to.not.throw();
  });

  it('the package cache keeps the caches of the most recently built layer folders', () => {
    const dir = tmpDir('prune-cache-');
    const entry = { stamp: 's', hash: 'sha256:0', baked: {} as never, digests: [] };
    const seen = new Set<string>();
    for (let i = 0; i <= KEEP_PACKAGE_CACHES; i++) {
      const c = LayerCache.open(dir, path.join(dir, `layer${i}`));
      c.put('p/1.0.0', entry);
      c.misses = 1;
      expect(c.save()).to.equal(undefined);
      // each written a second after the one before
      for (const f of fs.readdirSync(path.join(dir, 'packages')).filter((n) => !seen.has(n))) {
        seen.add(f);
        age(path.join(dir, 'packages', f), i);
      }
    }
    expect(fs.readdirSync(path.join(dir, 'packages'))).to.have.length(KEEP_PACKAGE_CACHES);
    // the first folder's cache went, the last one's is read back
    expect(LayerCache.open(dir, path.join(dir, 'layer0')).entries()).to.deep.equal([]);
    expect(LayerCache.open(dir, path.join(dir, `layer${KEEP_PACKAGE_CACHES}`)).entries()).to.have.length(1);
  });
});
