import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { readZip } from '../helpers/zip.js';
import { cleanupTmp, tmpDir, writeDirPackage, writeZipPackage } from '../helpers/fixtures.js';
import { get, getJson, startRegistry } from '../helpers/server.js';

type Entry = { name: string; version: string; title: string };

/** Starts a registry over the paths, returns the title the search and package info report and the README served. */
async function servedBy(paths: string[], name = 'dup', version = '1.0.0'): Promise<{ search: string; info: string; readme: string; problems: string[] }> {
  const reg = await startRegistry(paths);
  try {
    const search = (await getJson<Entry[]>(reg.url, `/search?package=${name}`)).map((e) => e.title);
    expect(search).to.have.length(1);
    const info = (await getJson<Entry>(reg.url, `/package/${name}/${version}/`)).title;
    const readme = (await get(reg.url, `/package/${name}/${version}/docs/README.md`)).text;
    return { search: search[0], info, readme, problems: reg.problems };
  } finally {
    await reg.close();
  }
}

describe('server: first wins over package_paths', function () {
  this.timeout(20000);
  let a: string;
  let b: string;
  let zipsA: string;
  let zipsB: string;

  before(async () => {
    const root = tmpDir();
    a = path.join(root, 'a');
    b = path.join(root, 'b');
    zipsA = path.join(root, 'zips-a');
    zipsB = path.join(root, 'zips-b');
    writeDirPackage(a, { name: 'dup', version: '1.0.0', title: 'Directory A', readme: 'readme A\n' });
    writeDirPackage(b, { name: 'dup', version: '1.0.0', title: 'Directory B', readme: 'readme B\n' });
    await writeZipPackage(zipsA, { name: 'dup', version: '1.0.0', title: 'Zip A', readme: 'zip readme A\n' });
    await writeZipPackage(zipsB, { name: 'dup', version: '1.0.0', title: 'Zip B', readme: 'zip readme B\n' });
    // versions that exist in one path only are all served
    writeDirPackage(b, { name: 'dup', version: '0.5.0', title: 'Only in B' });
  });
  after(cleanupTmp);

  it('the same name+version in two directory paths: the first path\'s package', async () => {
    expect(await servedBy([a, b])).to.deep.equal({ search: 'Directory A', info: 'Directory A', readme: 'readme A\n', problems: [] });
  });

  it('swapping the paths swaps the winner', async () => {
    expect(await servedBy([b, a])).to.deep.equal({ search: 'Directory B', info: 'Directory B', readme: 'readme B\n', problems: [] });
  });

  it('a zip beats a directory package in an earlier path', async () => {
    const r = await servedBy([a, zipsB]);
    expect(r.info).to.equal('Zip B');
    expect(r.readme).to.equal('zip readme B\n');
  });

  it('a zip beats a directory package in a later path', async () => {
    const r = await servedBy([zipsA, b]);
    expect(r.info).to.equal('Zip A');
  });

  it('two zips: the first path\'s', async () => {
    expect((await servedBy([zipsB, zipsA])).info).to.equal('Zip B');
    expect((await servedBy([zipsA, zipsB])).info).to.equal('Zip A');
  });

  it('a zip and a directory package in the same path: the zip', async () => {
    const root = tmpDir();
    writeDirPackage(root, { name: 'dup', version: '1.0.0', title: 'Directory' });
    await writeZipPackage(root, { name: 'dup', version: '1.0.0', title: 'Zip' });
    expect((await servedBy([root])).info).to.equal('Zip');
  });

  it('the download follows the winner: a zip winner is sent as is, a directory winner is zipped from its files', async () => {
    const reg = await startRegistry([a, zipsB]);
    try {
      const r = await get(reg.url, '/epr/dup/dup-1.0.0.zip');
      expect(r.body.equals(fs.readFileSync(path.join(zipsB, 'dup-1.0.0.zip')))).to.equal(true);
      expect((await get(reg.url, '/epr/dup/dup-1.0.0.zip.sig')).status).to.equal(200);
    } finally {
      await reg.close();
    }
    const dirOnly = await startRegistry([b, a]);
    try {
      const r = await get(dirOnly.url, '/epr/dup/dup-1.0.0.zip');
      expect(r.status).to.equal(200);
      const readme = (await readZip(r.body, true)).find((e) => e.name === 'dup-1.0.0/docs/README.md');
      expect(readme?.content?.toString()).to.equal('readme B\n');
      expect((await get(dirOnly.url, '/epr/dup/dup-1.0.0.zip.sig')).status).to.equal(404);
    } finally {
      await dirOnly.close();
    }
  });

  // BUG: registry.ts gives every registry of a process the same ZipCache folder (os.tmpdir()/epr-zips-<pid>)
  // and the cache file is named by <name>-<version> only: the second registry overwrites the first one's
  // zip, and closing one removes the folder under the other.
  it('two registries in one process, each with its own dup-1.0.0 directory package, each serve their own zip', async () => {
    const ra = await startRegistry([a]);
    const rb = await startRegistry([b]);
    const readmeOf = async (url: string) => (await readZip((await get(url, '/epr/dup/dup-1.0.0.zip')).body, true)).find((e) => e.name === 'dup-1.0.0/docs/README.md')?.content?.toString();
    try {
      expect(await readmeOf(ra.url)).to.equal('readme A\n');
      expect(await readmeOf(rb.url)).to.equal('readme B\n');
      expect(await readmeOf(ra.url)).to.equal('readme A\n');
      await ra.close();
      expect(await readmeOf(rb.url)).to.equal('readme B\n');
    } finally {
      await ra.close();
      await rb.close();
    }
  });

  it('versions from every path are merged', async () => {
    const reg = await startRegistry([a, b]);
    try {
      const all = await getJson<Entry[]>(reg.url, '/search?package=dup&all=true');
      expect(all.map((e) => `${e.version} ${e.title}`)).to.deep.equal(['0.5.0 Only in B', '1.0.0 Directory A']);
    } finally {
      await reg.close();
    }
  });
});
