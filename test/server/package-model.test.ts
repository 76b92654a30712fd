/**
 * What the package model makes of manifests and files, seen over HTTP:
 * defaults, deprecation, odd files, links and broken zips.
 */
import { expect } from 'chai';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { cleanupTmp, tmpDir, writeDirPackage, zipBuffer } from '../helpers/fixtures.js';
import { get, getJson, startRegistry, type TestRegistry } from '../helpers/server.js';
import { readZip } from '../helpers/zip.js';

type Json = Record<string, unknown>;

/** Bigger than what the server keeps in memory, so it is streamed from disk. */
const BIG = crypto.randomBytes(700 * 1024);

describe('server: the package model over HTTP', function () {
  this.timeout(20000);
  let reg: TestRegistry;
  let base: string;
  let zips: string;

  before(async () => {
    const d = tmpDir();
    const dir = writeDirPackage(d, {
      name: 'files',
      version: '1.0.0',
      files: { 'empty.txt': '', noext: 'plain text here\n', 'blob': Buffer.from([0, 1, 2, 3, 255]), 'docs/ünïcode.md': 'unicode\n', 'data/big.bin': BIG },
    });
    fs.writeFileSync(path.join(d, 'outside.txt'), 'OUTSIDE');
    fs.symlinkSync(path.join(d, 'outside.txt'), path.join(dir, 'link-out.txt'));
    fs.symlinkSync(path.join(dir, 'noext'), path.join(dir, 'link-in.txt'));
    writeDirPackage(d, { name: 'dep', version: '1.0.0' });
    writeDirPackage(d, { name: 'dep', version: '2.0.0', manifest: { deprecated: { since: '2.0.0', description: 'Use other instead', replaced_by: { package: 'other' } } } });
    writeDirPackage(d, {
      name: 'defaults',
      version: '1.0.0-rc1',
      manifest: {
        conditions: { elastic: { subscription: 'gold' } },
        policy_templates: [{ name: 'a', title: 'A', description: 'd' }, { name: 'b', title: 'B', description: 'd', multiple: false }],
      },
      omit: ['type'],
      dataStreams: { metrics: { title: 'Metrics', type: 'metrics' }, logs: { title: 'Logs', type: 'logs', dataset: 'custom.ds' } },
    });
    writeDirPackage(d, { name: 'zero', version: '0.3.0' });
    writeDirPackage(d, { name: 'licensed', version: '1.0.0', manifest: { license: 'basic' } });
    writeDirPackage(path.join(d, 'group', 'subgroup'), { name: 'deep', version: '1.0.0' });
    writeDirPackage(d, {
      name: 'tplcat', version: '1.0.0', manifest: { categories: ['security'], policy_templates: [{ name: 't', title: 't', description: 'd', categories: ['my_own_category'] }] },
    });

    zips = tmpDir();
    fs.writeFileSync(path.join(zips, 'two-1.0.0.zip'), await zipBuffer([{ name: 'two-1.0.0/manifest.yml', content: Buffer.from('x: 1\n') }, { name: 'other/x', content: Buffer.from('y') }]));
    fs.writeFileSync(path.join(zips, 'two-1.0.0.zip.sig'), 'sig\n');
    reg = await startRegistry([d]);
    expect(reg.problems).to.deep.equal([]);
    base = reg.url;
  });
  after(async () => {
    await reg?.close();
    cleanupTmp();
  });

  it('defaults: type integration, release beta for a pre-release or 0.x, license from the subscription, multiple true', async () => {
    const info = await getJson<Json>(base, '/package/defaults/1.0.0-rc1/');
    expect(info.type).to.equal('integration');
    expect(info.release).to.equal('beta');
    expect(info.license).to.equal('gold');
    expect((info.policy_templates as Json[]).map((t) => [t.name, t.multiple])).to.deep.equal([['a', true], ['b', false]]);
    expect((info.data_streams as Json[]).map((s) => [s.dataset, s.path, s.release])).to.deep.equal([['custom.ds', 'logs', 'beta'], ['defaults.metrics', 'metrics', 'beta']]);
    expect((await getJson<Json>(base, '/package/zero/0.3.0/')).release).to.equal('beta');
    expect((await getJson<Json>(base, '/package/licensed/1.0.0/')).license).to.equal('basic');
    expect((await getJson<Json>(base, '/package/files/1.0.0/')).release).to.equal('ga');
  });

  it("the newest version's deprecation notice applies to every version", async () => {
    const all = await getJson<Json[]>(base, '/search?package=dep&all=true');
    const notice = { since: '2.0.0', description: 'Use other instead', replaced_by: { package: 'other' } };
    expect(all.map((e) => [e.version, e.deprecated])).to.deep.equal([['1.0.0', notice], ['2.0.0', notice]]);
    expect((await getJson<Json>(base, '/package/dep/1.0.0/')).deprecated).to.deep.equal(notice);
  });

  it('package directories are found at any depth below a package path', async () => {
    expect((await getJson<Json>(base, '/package/deep/1.0.0/')).name).to.equal('deep');
  });

  it('policy template categories outside the fixed list are kept and titled by their id', async () => {
    const cats = await getJson<Array<{ id: string; title: string; count: number }>>(base, '/categories?include_policy_templates=true');
    expect(cats.find((c) => c.id === 'my_own_category')).to.deep.equal({ id: 'my_own_category', title: 'my_own_category', count: 2 });
    const found = await getJson<Json[]>(base, '/search?category=my_own_category');
    expect(found.map((e) => e.name)).to.deep.equal(['tplcat']);
  });

  it('an empty file: 200 with an empty body', async () => {
    const r = await get(base, '/package/files/1.0.0/empty.txt');
    expect(r.status).to.equal(200);
    expect(r.body.length).to.equal(0);
    expect(r.headers['content-length']).to.equal('0');
  });

  it('a file without an extension: text/plain when it looks like text, application/octet-stream otherwise', async () => {
    const text = await get(base, '/package/files/1.0.0/noext');
    expect(text.headers['content-type']).to.equal('text/plain; charset=utf-8');
    const blob = await get(base, '/package/files/1.0.0/blob');
    expect(blob.headers['content-type']).to.equal('application/octet-stream');
    expect(blob.body.equals(Buffer.from([0, 1, 2, 3, 255]))).to.equal(true);
  });

  it('a non-ASCII file name, percent-encoded as UTF-8', async () => {
    const r = await get(base, `/package/files/1.0.0/docs/${encodeURIComponent('ünïcode.md')}`);
    expect(r.status).to.equal(200);
    expect(r.text).to.equal('unicode\n');
  });

  it('a symbolic link leaving the package is neither served, listed nor zipped; one inside it is', async () => {
    expect((await get(base, '/package/files/1.0.0/link-out.txt')).status).to.equal(404);
    expect((await get(base, '/package/files/1.0.0/link-in.txt')).text).to.equal('plain text here\n');
    const info = await getJson<{ assets: string[] }>(base, '/package/files/1.0.0/');
    expect(info.assets).to.not.include('/package/files/1.0.0/link-out.txt');
    expect(info.assets).to.include('/package/files/1.0.0/link-in.txt');
    const names = (await readZip((await get(base, '/epr/files/files-1.0.0.zip')).body)).map((e) => e.name);
    expect(names).to.include('files-1.0.0/link-in.txt');
    expect(names).to.not.include('files-1.0.0/link-out.txt');
    expect(names).to.include('files-1.0.0/docs/ünïcode.md');
  });

  describe('a large file (streamed from disk)', () => {
    const url = '/package/files/1.0.0/data/big.bin';

    it('whole: the exact bytes, Content-Length, Last-Modified, ETag', async () => {
      const r = await get(base, url);
      expect(r.status).to.equal(200);
      expect(r.body.equals(BIG)).to.equal(true);
      expect(Number(r.headers['content-length'])).to.equal(BIG.length);
      expect(r.headers['accept-ranges']).to.equal('bytes');
      expect(r.headers['last-modified']).to.be.a('string');
      expect(r.headers.etag).to.match(/^"[^"]+"$/);
      expect(r.headers['access-control-allow-origin']).to.equal('*');
    });

    it('Range: 206 with Content-Range; an open and a suffix range', async () => {
      const r = await get(base, url, { Range: 'bytes=1000-1999' });
      expect(r.status).to.equal(206);
      expect(r.headers['content-range']).to.equal(`bytes 1000-1999/${BIG.length}`);
      expect(r.body.equals(BIG.subarray(1000, 2000))).to.equal(true);
      const open = await get(base, url, { Range: `bytes=${BIG.length - 5}-` });
      expect(open.body.equals(BIG.subarray(BIG.length - 5))).to.equal(true);
      const suffix = await get(base, url, { Range: 'bytes=-7' });
      expect(suffix.body.equals(BIG.subarray(BIG.length - 7))).to.equal(true);
      const bad = await get(base, url, { Range: `bytes=${BIG.length}-` });
      expect(bad.status).to.equal(416);
      expect(bad.headers['content-range']).to.equal(`bytes */${BIG.length}`);
    });

    it('If-Modified-Since and If-None-Match: 304', async () => {
      const r = await get(base, url);
      const ims = await get(base, url, { 'If-Modified-Since': String(r.headers['last-modified']) });
      expect(ims.status).to.equal(304);
      expect(ims.body.length).to.equal(0);
      const inm = await get(base, url, { 'If-None-Match': String(r.headers.etag) });
      expect(inm.status).to.equal(304);
      expect((await get(base, url, { 'If-None-Match': '"other"' })).status).to.equal(200);
    });

    it('HEAD: the headers without the body', async () => {
      const { rawRequest } = await import('../helpers/server.js');
      const h = await rawRequest(base, url, { method: 'HEAD' });
      expect(h.status).to.equal(200);
      expect(h.body.length).to.equal(0);
      expect(Number(h.headers['content-length'])).to.equal(BIG.length);
    });
  });

  it('a zip with more than one top folder is refused at load, naming the folders', async () => {
    const r = await startRegistry([zips]);
    try {
      expect(r.problems).to.have.length(1);
      expect(r.problems[0]).to.include('two-1.0.0.zip must hold exactly one top folder <name>-<version>/, found other, two-1.0.0');
    } finally {
      await r.close();
    }
  });
});

describe('server: zips made from directory packages are deterministic', function () {
  this.timeout(20000);
  after(cleanupTmp);

  it('the same files in two places, with different mtimes, give the same zip bytes from two registries', async () => {
    const spec = { name: 'det', version: '1.0.0', files: { 'img/a.svg': '<svg/>\n', 'data_stream/x/fields/f.yml': '- name: a\n' }, dataStreams: { x: { title: 'X', type: 'logs' } } };
    const first = writeDirPackage(tmpDir(), spec);
    const second = writeDirPackage(tmpDir(), spec);
    const old = new Date('2001-02-03T04:05:06Z');
    for (const f of ['manifest.yml', 'docs/README.md', 'img/a.svg']) fs.utimesSync(path.join(second, f), old, old);
    const r1 = await startRegistry([path.dirname(path.dirname(first))]);
    const r2 = await startRegistry([path.dirname(path.dirname(second))]);
    try {
      const a = await get(r1.url, '/epr/det/det-1.0.0.zip');
      const b = await get(r2.url, '/epr/det/det-1.0.0.zip');
      expect(a.status).to.equal(200);
      expect(b.body.equals(a.body)).to.equal(true);
      expect((await readZip(a.body)).map((e) => e.name)).to.deep.equal([
        'det-1.0.0/data_stream/',
        'det-1.0.0/data_stream/x/',
        'det-1.0.0/data_stream/x/fields/',
        'det-1.0.0/data_stream/x/fields/f.yml',
        'det-1.0.0/data_stream/x/manifest.yml',
        'det-1.0.0/docs/',
        'det-1.0.0/docs/README.md',
        'det-1.0.0/img/',
        'det-1.0.0/img/a.svg',
        'det-1.0.0/manifest.yml',
      ]);
    } finally {
      await r1.close();
      await r2.close();
    }
  });
});

describe('server: symbolic link loops', function () {
  this.timeout(20000);
  after(cleanupTmp);

  it('a loop in a package path does not hang the scan: each package is loaded once', async () => {
    const d = tmpDir();
    writeDirPackage(d, { name: 'n', version: '1.0.0' });
    fs.symlinkSync(d, path.join(d, 'loop'));
    const r = await startRegistry([d]);
    try {
      expect(r.problems).to.deep.equal([]);
      expect(r.loaded.index.size).to.equal(1);
      expect((await get(r.url, '/package/n/1.0.0/')).status).to.equal(200);
    } finally {
      await r.close();
    }
  });

  it('a loop inside a package is reported for that package, without a crash', async () => {
    const d = tmpDir();
    const pkg = writeDirPackage(d, { name: 'm', version: '1.0.0' });
    writeDirPackage(d, { name: 'ok', version: '1.0.0' });
    fs.symlinkSync(pkg, path.join(pkg, 'docs', 'loop'));
    const r = await startRegistry([d]);
    try {
      expect(r.problems).to.have.length(1);
      expect(r.problems[0]).to.include(pkg);
      expect(r.loaded.index.names()).to.deep.equal(['ok']);
    } finally {
      await r.close();
    }
  });
});

describe('server: file names that cannot go into a zip', function () {
  this.timeout(20000);
  after(cleanupTmp);

  // BUG: a directory package with a backslash in a file name (legal on Linux) loads and validates, but
  // yazl turns "docs/..\evil.md" into "docs/../evil.md" and throws: the download is a 500. The load
  // (package.ts loadPackage) should report such names with unsafeEntryName(), as it does for zips.
  it('a backslash in a file name: refused at load, or a working download, never a 500', async () => {
    const d = tmpDir();
    writeDirPackage(d, { name: 'odd', version: '1.0.0', files: { 'docs/..\\evil.md': 'x' } });
    const r = await startRegistry([d]);
    try {
      if (r.problems.length === 0) {
        const zip = await get(r.url, '/epr/odd/odd-1.0.0.zip');
        expect(zip.status).to.equal(200);
        expect((await readZip(zip.body)).map((e) => e.name)).to.not.include('odd-1.0.0/../evil.md');
      } else {
        expect(r.problems[0]).to.include('evil.md');
      }
    } finally {
      await r.close();
    }
  });

  // BUG: archive.ts ZipCache.make() sets usable = false on ANY error, so one package whose zip cannot
  // be made (above) turns the zip cache off for every package: their answers change (no Content-Length).
  // Only file-system errors (mkdir/write of the cache folder) should turn it off.
  it("one package's failing zip does not change the downloads of the others", async () => {
    const d = tmpDir();
    writeDirPackage(d, { name: 'odd', version: '1.0.0', files: { 'docs/..\\evil.md': 'x' } });
    writeDirPackage(d, { name: 'fine', version: '1.0.0' });
    writeDirPackage(d, { name: 'other', version: '1.0.0' });
    const r = await startRegistry([d], { validate: false });
    try {
      const before = await get(r.url, '/epr/fine/fine-1.0.0.zip');
      await get(r.url, '/epr/odd/odd-1.0.0.zip');
      const after = await get(r.url, '/epr/other/other-1.0.0.zip');
      expect(after.status).to.equal(200);
      expect(after.headers['content-length'] === undefined).to.equal(before.headers['content-length'] === undefined);
    } finally {
      await r.close();
    }
  });
});
