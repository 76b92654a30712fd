import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { walkFolders } from '../../builder/walk-pool.js';
import { SourceError, walkFiles } from '../../server/packages/source.js';
import { cleanupTmp, tmpDir } from '../helpers/fixtures.js';

describe('builder: walking many folders on every core', () => {
  after(cleanupTmp);

  it('gives what walkFiles gives for each folder, in order, with a folder that fails as a SourceError', async () => {
    const root = tmpDir('walk-pool-');
    const dirs: string[] = [];
    for (let i = 0; i < 200; i++) {
      const d = path.join(root, `p${i}`);
      fs.mkdirSync(path.join(d, 'docs'), { recursive: true });
      fs.writeFileSync(path.join(d, 'manifest.yml'), `name: p${i}\n`);
      fs.writeFileSync(path.join(d, 'docs', 'README.md'), 'x'.repeat(i));
      dirs.push(d);
    }
    // a link back to its own folder: the walk refuses it
    fs.symlinkSync(dirs[150], path.join(dirs[150], 'docs', 'loop'));
    const walked = await walkFolders(dirs);
    expect(walked).to.have.length(200);
    for (const [i, w] of walked.entries()) {
      if (i === 150) {
        expect(w).to.be.instanceOf(SourceError);
        expect((w as SourceError).message).to.match(/symbolic link loop/);
        continue;
      }
      const want = walkFiles(dirs[i]).map((f) => ({ path: f.path, size: f.size, mtime: f.mtime?.getTime() }));
      expect((w as Array<{ path: string; size: number; mtime?: Date }>).map((f) => ({ path: f.path, size: f.size, mtime: f.mtime?.getTime() }))).to.deep.equal(want);
    }
  });
});
