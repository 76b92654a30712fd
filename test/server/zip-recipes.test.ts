/**
 * A layer whose zips are recipes (made as the builder makes them, unpacked by
 * GNU tar) answers every route exactly as the plain zips do: bodies, sha256,
 * headers, ranges, HEAD and 304s; read through its baked index or scanned.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { FIXED_MTIME } from '../../builder/tar.js';
import { BAKED_INDEX_FILE } from '../../server/packages/baked.js';
import { ENTRY_STORE, isRecipe } from '../../server/packages/zip-recipe.js';
import { cleanupTmp, tmpDir, writeDirPackage, writeZipPackage } from '../helpers/fixtures.js';
import { rawRequest, startRegistry, type RawResponse, type TestRegistry } from '../helpers/server.js';
import { builtLayer, sha256, zipVersions } from '../helpers/zip-recipes.js';

/** Headers that say when or over what connection, not what was answered. */
const VOLATILE = new Set(['date', 'connection', 'keep-alive']);

function headersOf(r: RawResponse): Record<string, unknown> {
  return Object.fromEntries(Object.entries(r.headers).filter(([k]) => !VOLATILE.has(k)));
}

describe('zip packages kept as recipes', function () {
  this.timeout(120_000);
  let plain: TestRegistry;
  let baked: TestRegistry;
  let scanned: TestRegistry;
  let plainDir = '';

  before(async () => {
    plainDir = tmpDir('zr-srv-plain-');
    for (const s of zipVersions('web', ['1.0.0', '1.1.0', '1.2.0'])) await writeZipPackage(plainDir, s);
    for (const s of zipVersions('db', ['0.1.0', '0.2.0'])) await writeZipPackage(path.join(plainDir, 'db'), s);
    writeDirPackage(plainDir, zipVersions('folder', ['1.0.0'])[0]);
    // the times files have in an image, so that validators can be compared
    const stamp = (dir: string) => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
        const abs = path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name);
        if (e.isFile()) fs.utimesSync(abs, FIXED_MTIME, FIXED_MTIME);
      }
    };
    stamp(plainDir);
    const { dir } = await builtLayer(plainDir);
    expect(fs.readdirSync(path.join(dir, ENTRY_STORE)).length).to.be.greaterThan(3);
    for (const z of ['web-1.0.0.zip', 'web-1.2.0.zip', 'db/db-0.2.0.zip']) expect(isRecipe(fs.readFileSync(path.join(dir, z))), z).to.equal(true);
    const copy = tmpDir('zr-srv-scan-');
    fs.cpSync(dir, copy, { recursive: true, preserveTimestamps: true });
    fs.rmSync(path.join(copy, BAKED_INDEX_FILE));
    [plain, baked, scanned] = await Promise.all([startRegistry([plainDir]), startRegistry([dir]), startRegistry([copy])]);
    expect(plain.problems).to.deep.equal([]);
    expect(baked.problems).to.deep.equal([]);
    expect(scanned.problems).to.deep.equal([]);
  });

  after(async () => {
    await Promise.all([plain?.close(), baked?.close(), scanned?.close()]);
    cleanupTmp();
  });

  /** The same request to the three registries: the same status, headers and body. */
  async function same(p: string, opts: { method?: string; headers?: Record<string, string> } = {}): Promise<RawResponse> {
    const [a, b, c] = await Promise.all([plain, baked, scanned].map((r) => rawRequest(r.url, p, opts)));
    for (const [name, x] of [['baked', b], ['scanned', c]] as const) {
      const what = `${opts.method ?? 'GET'} ${p} ${JSON.stringify(opts.headers ?? {})} (${name})`;
      expect(x.status, `${what} status`).to.equal(a.status);
      expect(headersOf(x), `${what} headers`).to.deep.equal(headersOf(a));
      expect(x.body.equals(a.body), `${what} body`).to.equal(true);
    }
    return a;
  }

  it('search, categories, package info and every file inside the packages', async () => {
    for (const p of ['/', '/search', '/search?all=true&prerelease=true', '/categories', '/categories?include_policy_templates=true']) await same(p);
    const all = JSON.parse((await same('/search?all=true&prerelease=true')).text) as Array<{ name: string; version: string }>;
    expect(all.map((p) => `${p.name}@${p.version}`)).to.deep.equal(['db@0.1.0', 'db@0.2.0', 'folder@1.0.0', 'web@1.0.0', 'web@1.1.0', 'web@1.2.0']);
    let files = 0;
    for (const { name, version } of all) {
      const info = JSON.parse((await same(`/package/${name}/${version}/`)).text) as { assets: string[] };
      for (const asset of info.assets) {
        const r = await same(asset);
        expect(r.status, asset).to.equal(200);
        await same(asset, { headers: { range: 'bytes=1-20' } });
        files++;
      }
    }
    expect(files).to.be.greaterThan(40);
  });

  it('every zip: the bytes of the original (sha256), with the same headers, ranges, HEAD and 304s; every signature', async () => {
    const zips: string[] = [];
    for (const dir of [plainDir, path.join(plainDir, 'db')]) zips.push(...fs.readdirSync(dir).filter((n) => n.endsWith('.zip')).map((n) => path.join(dir, n)));
    expect(zips).to.have.length(5);
    for (const file of zips) {
      const key = path.basename(file, '.zip');
      const name = key.slice(0, key.lastIndexOf('-'));
      const url = `/epr/${name}/${key}.zip`;
      const bytes = fs.readFileSync(file);
      const whole = await same(url);
      expect(whole.status).to.equal(200);
      expect(sha256(whole.body)).to.equal(sha256(bytes));
      expect(whole.headers['content-length']).to.equal(String(bytes.length));
      expect(whole.headers['content-type']).to.equal('application/zip');
      expect(whole.headers['accept-ranges']).to.equal('bytes');
      const head = await same(url, { method: 'HEAD' });
      expect(head.headers['content-length']).to.equal(String(bytes.length));
      for (const range of ['bytes=0-99', 'bytes=100-', 'bytes=-22', `bytes=${bytes.length - 5000}-${bytes.length - 4000}`, 'bytes=1000-1000000000', `bytes=${bytes.length}-`, 'bytes=0-0,5-9']) {
        const r = await same(url, { headers: { range } });
        if (r.status === 206) {
          const [, s, e] = /^bytes (\d+)-(\d+)\//.exec(String(r.headers['content-range']))!;
          expect(r.body.equals(bytes.subarray(Number(s), Number(e) + 1)), range).to.equal(true);
        }
      }
      await same(url, { headers: { range: `bytes=${bytes.length}-` } }).then((r) => expect(r.status).to.equal(416));
      const etag = String(whole.headers.etag);
      expect((await same(url, { headers: { 'if-none-match': etag } })).status).to.equal(304);
      expect((await same(url, { headers: { 'if-modified-since': String(whole.headers['last-modified']) } })).status).to.equal(304);
      const sig = await same(`${url}.sig`);
      expect(sig.body.equals(fs.readFileSync(`${file}.sig`))).to.equal(true);
    }
    // the directory package's zip is made as before; unknown versions are the same 404
    await same('/epr/folder/folder-1.0.0.zip');
    await same('/epr/web/web-9.9.9.zip');
  });
});
