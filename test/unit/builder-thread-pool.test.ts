import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { shareOut } from '../../builder/thread-pool.js';
import { loadTask, walkTask, type LoadInput } from '../../builder/package-tasks.js';
import { walkFiles } from '../../server/packages/source.js';
import { cleanupTmp, tmpDir, writeDirPackage } from '../helpers/fixtures.js';

describe('builder: package work shared out between threads', () => {
  after(cleanupTmp);

  it('walks give what walkFiles gives for each folder, in order; a folder that fails says why', async () => {
    const root = tmpDir('pool-walk-');
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
    const walked = await shareOut('walk', dirs);
    expect(walked).to.have.length(200);
    for (const [i, w] of walked.entries()) {
      if (i === 150) {
        expect(w).to.have.property('error').that.matches(/symbolic link loop/);
        continue;
      }
      expect(w).to.deep.equal({ files: walkFiles(dirs[i]).map((f) => [f.path, f.size, f.mtime?.getTime()]) });
    }
  });

  it('loads give what one thread gives: entries for valid packages, problems for invalid ones, in order', async () => {
    const root = tmpDir('pool-load-');
    const inputs: LoadInput[] = [];
    for (let i = 0; i < 100; i++) {
      const spec = i % 10 === 3 ? { name: `q${i}`, version: '1.0.0', omit: ['title'] } : { name: `q${i}`, version: '1.0.0' };
      writeDirPackage(root, spec);
      const abs = path.join(root, `q${i}`, '1.0.0');
      const w = walkTask(abs);
      if (!('files' in w)) throw new Error('walk failed');
      inputs.push({ root, abs, kind: 'directory', stamp: `s${i}`, files: w.files });
    }
    const shared = await shareOut('load', inputs);
    const alone: unknown[] = [];
    for (const i of inputs) alone.push(await loadTask(i));
    expect(shared).to.deep.equal(alone);
    expect(shared.filter((r) => 'problems' in r)).to.have.length(10);
    expect(shared[3]).to.have.property('problems').that.deep.includes({ file: path.join(inputs[3].abs, 'manifest.yml'), field: 'title', message: 'is required' });
  });
});
