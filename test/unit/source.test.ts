import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { unsafeEntryName, walkFiles, byteCompare, listFolders } from '../../server/packages/source.js';
import { cleanupTmp, tmpDir } from '../helpers/fixtures.js';

describe('source: unsafeEntryName', () => {
  const safe = ['pkg-1.0.0/', 'pkg-1.0.0/manifest.yml', 'pkg-1.0.0/docs/README.md', 'pkg-1.0.0/a..b/c', 'pkg-1.0.0/..hidden', 'pkg-1.0.0/.../x'];
  for (const n of safe) it(`"${n}" is safe`, () => expect(unsafeEntryName(n)).to.equal(undefined));

  const cases: Array<[string, string]> = [
    ['pkg-1.0.0/../evil.txt', 'parent directory reference'],
    ['../evil.txt', 'parent directory reference'],
    ['pkg-1.0.0/a/../../evil', 'parent directory reference'],
    ['..', 'parent directory reference'],
    ['/etc/passwd', 'absolute path'],
    ['C:/Windows/x', 'absolute path'],
    ['c:evil', 'absolute path'],
    ['pkg-1.0.0\\..\\evil', 'backslash in path'],
    ['pkg-1.0.0/a\0b', 'NUL in path'],
  ];
  for (const [n, why] of cases) it(`"${JSON.stringify(n).slice(1, -1)}" is unsafe: ${why}`, () => expect(unsafeEntryName(n)).to.equal(why));
});

describe('source: walkFiles', () => {
  after(cleanupTmp);

  it('walks files only, sorted by bytes, depth first, with / separators', () => {
    const root = tmpDir();
    for (const rel of ['b.txt', 'a/z.txt', 'a/B.txt', 'A.txt', 'a/sub/x.txt']) {
      fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
      fs.writeFileSync(path.join(root, rel), rel);
    }
    fs.mkdirSync(path.join(root, 'empty'));
    expect(walkFiles(root).map((f) => f.path)).to.deep.equal(['A.txt', 'a/B.txt', 'a/sub/x.txt', 'a/z.txt', 'b.txt']);
  });

  it('skips symbolic links that leave the root', () => {
    const root = tmpDir();
    const outside = tmpDir();
    fs.writeFileSync(path.join(outside, 'secret'), 'secret');
    fs.writeFileSync(path.join(root, 'inside.txt'), 'in');
    fs.symlinkSync(path.join(outside, 'secret'), path.join(root, 'link-out'));
    fs.symlinkSync(path.join(root, 'inside.txt'), path.join(root, 'link-in'));
    expect(walkFiles(root).map((f) => f.path)).to.deep.equal(['inside.txt', 'link-in']);
  });

  it('sizes and times are those of the files (read when asked for)', () => {
    const root = tmpDir();
    fs.mkdirSync(path.join(root, 'd'));
    fs.writeFileSync(path.join(root, 'd', 'f.txt'), 'twelve bytes');
    const old = new Date('2001-02-03T04:05:06Z');
    fs.utimesSync(path.join(root, 'd', 'f.txt'), old, old);
    const [f] = walkFiles(root);
    expect(f.path).to.equal('d/f.txt');
    expect(f.size).to.equal(12);
    expect(f.mtime!.getTime()).to.equal(old.getTime());
  });

  it('a folder listing read ahead (listFolders) gives the same walk', async () => {
    const root = tmpDir();
    for (const rel of ['b.txt', 'a/z.txt', 'a/B.txt', 'a/sub/x.txt']) {
      fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
      fs.writeFileSync(path.join(root, rel), rel);
    }
    fs.symlinkSync(path.join(root, 'a', 'sub'), path.join(root, 'linked'));
    const listed = await listFolders(root);
    expect(listed.has(path.join(root, 'a', 'sub'))).to.equal(true);
    expect(walkFiles(root, listed).map((f) => f.path)).to.deep.equal(walkFiles(root).map((f) => f.path));
    expect(walkFiles(root).map((f) => f.path)).to.deep.equal(['a/B.txt', 'a/sub/x.txt', 'a/z.txt', 'b.txt', 'linked/x.txt']);
  });

  it('byteCompare sorts as bytes, not by locale', () => {
    expect(['b', 'B', 'a', '_', 'A'].sort(byteCompare)).to.deep.equal(['A', 'B', '_', 'a', 'b']);
  });
});
