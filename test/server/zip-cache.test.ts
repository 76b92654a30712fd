/**
 * Zips of directory packages are made once, kept in a folder of the process
 * and then sent from that file (after the first download, before the router):
 * the bytes and headers are those of a zip made on the fly, whatever happens
 * to the folder.
 */
import { expect } from 'chai';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { cleanupTmp, tmpDir, writeDirPackage } from '../helpers/fixtures.js';
import { get, rawRequest, startRegistry, type TestRegistry } from '../helpers/server.js';
import { ZipCache, zipPackage } from '../../server/packages/archive.js';
import { DirectorySource } from '../../server/packages/source.js';

/** Bigger than one chunk of the file sender (256 kB), so a download takes several reads. */
const BIG = crypto.randomBytes(600 * 1024);
const URL_PATH = '/epr/zc/zc-1.0.0.zip';

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Headers that must not differ between two answers of the same URL. */
function stableHeaders(h: Record<string, unknown>): Record<string, unknown> {
  const { date: _date, ...rest } = h;
  return rest;
}

describe('server: zips of directory packages kept on disk', function () {
  this.timeout(20000);
  let dir: string;
  let onTheFly: Buffer;
  let reg: TestRegistry;

  before(async () => {
    dir = writeDirPackage(tmpDir(), { name: 'zc', version: '1.0.0', files: { 'data/big.bin': BIG, 'img/a.svg': '<svg/>\n' } });
    onTheFly = await collect(zipPackage(new DirectorySource(dir), 'zc-1.0.0'));
    reg = await startRegistry([path.dirname(path.dirname(dir))]);
  });
  after(async () => {
    await reg.close();
    cleanupTmp();
  });

  it('the first download makes the file, later ones are sent from it: the same bytes as zipping on the fly', async () => {
    const first = await rawRequest(reg.url, URL_PATH);
    const second = await rawRequest(reg.url, URL_PATH);
    const third = await rawRequest(reg.url, URL_PATH);
    for (const r of [first, second, third]) {
      expect(r.status).to.equal(200);
      expect(r.body.equals(onTheFly)).to.equal(true);
      expect(r.headers['content-length']).to.equal(String(onTheFly.length));
    }
    expect(stableHeaders(second.headers)).to.deep.equal(stableHeaders(first.headers));
    expect(stableHeaders(third.headers)).to.deep.equal(stableHeaders(first.headers));
  });

  it('the kept zip writes the same header lines, in the same order, as the route', async () => {
    const head = (r: Awaited<ReturnType<typeof rawRequest>>) => Object.keys(r.headers).filter((h) => h !== 'date');
    const a = await rawRequest(reg.url, '/epr/other-first-segment/zc-1.0.0.zip'); // a new URL: through the route
    const b = await rawRequest(reg.url, '/epr/other-first-segment/zc-1.0.0.zip'); // then straight from the file
    expect(head(b)).to.deep.equal(head(a));
    expect(b.body.equals(a.body)).to.equal(true);
  });

  it('still no ranges, no ETag, and HEAD without a length, as EPR', async () => {
    await get(reg.url, URL_PATH);
    const ranged = await get(reg.url, URL_PATH, { Range: 'bytes=0-3' });
    expect(ranged.status).to.equal(200);
    expect(ranged.body.equals(onTheFly)).to.equal(true);
    expect(ranged.headers['accept-ranges']).to.equal(undefined);
    expect(ranged.headers.etag).to.equal(undefined);
    const head = await rawRequest(reg.url, URL_PATH, { method: 'HEAD' });
    expect(head.status).to.equal(200);
    expect(head.headers['content-type']).to.equal('application/zip');
    expect(head.body.length).to.equal(0);
  });

  it('a kept zip removed from disk is made again on the next download', async () => {
    await get(reg.url, URL_PATH);
    const kept = await reg.loaded.ctx.zips!.get(new DirectorySource(dir), 'zc-1.0.0');
    expect(kept).to.not.equal(undefined);
    fs.rmSync(kept!.file);
    // once read into memory, its bytes no longer need the file
    await new Promise((r) => setTimeout(r, 100));
    expect((await get(reg.url, URL_PATH)).body.equals(onTheFly)).to.equal(true);
    // out of memory again (as past the budget for file bodies), it is written from the file, which is gone
    reg.loaded.ctx.answers!.evictFileBody(URL_PATH);
    for (let i = 0; i < 2; i++) {
      const again = await get(reg.url, URL_PATH);
      expect(again.status).to.equal(200);
      expect(again.body.equals(onTheFly)).to.equal(true);
    }
    expect(fs.existsSync(kept!.file), 'made again').to.equal(true);
  });

  it('a cache folder that cannot be created: zips are made on the fly, never a crash', async () => {
    const notAFolder = path.join(tmpDir(), 'file');
    fs.writeFileSync(notAFolder, 'x');
    const cache = new ZipCache(notAFolder);
    expect(await cache.get(new DirectorySource(dir), 'zc-1.0.0')).to.equal(undefined);
    const other = await startRegistry([path.dirname(path.dirname(dir))]);
    try {
      other.loaded.ctx.zips = cache;
      for (let i = 0; i < 2; i++) {
        const r = await get(other.url, URL_PATH);
        expect(r.status).to.equal(200);
        expect(r.body.equals(onTheFly)).to.equal(true);
      }
    } finally {
      await other.close();
    }
  });

  it('the cache folder is made on first use and removed at shutdown', async () => {
    const parent = tmpDir();
    const other = await startRegistry([path.dirname(path.dirname(dir))]);
    other.loaded.ctx.zips = new ZipCache(parent);
    expect(fs.readdirSync(parent)).to.deep.equal([]);
    expect((await get(other.url, URL_PATH)).body.equals(onTheFly)).to.equal(true);
    const made = fs.readdirSync(parent);
    expect(made).to.have.length(1);
    expect(fs.readdirSync(path.join(parent, made[0]))).to.deep.equal(['zc-1.0.0.zip']);
    await other.close();
    expect(fs.readdirSync(parent)).to.deep.equal([]);
  });
});
