/**
 * Zip packages as stored (plain zip files, and zips kept as recipes in an
 * image layer) are ready file answers after their first download: GET, HEAD,
 * ranges and 304s are written on the fast path (from memory) or by Node
 * straight from the file, with the very bytes the route sends, and the bytes
 * held in memory stay within the cache's budget however many zips are
 * downloaded.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { expect } from 'chai';
import { FIXED_MTIME } from '../../builder/tar.js';
import { isRecipe } from '../../server/packages/zip-recipe.js';
import type { ZipSource } from '../../server/packages/source.js';
import { ResponseCache } from '../../server/http/response-cache.js';
import { listen, loadRegistry, type LoadedRegistry, type RunningServer } from '../../server/registry.js';
import { silentLogger } from '../../server/logger.js';
import { cleanupTmp, tmpDir, writeZipPackage } from '../helpers/fixtures.js';
import { builtLayer, zipVersions } from '../helpers/zip-recipes.js';

interface Server { running: RunningServer; loaded: LoadedRegistry; nodeRequests: () => number }

async function start(dir: string, fastPath: boolean, answers?: ResponseCache): Promise<Server> {
  const loaded = await loadRegistry({
    config: { packagePaths: [dir], cacheTime: { index: 10, search: 600, categories: 600, catchAll: 600 }, source: 'test' },
    validate: true, requireSignatures: true, allowUnknownQueryParameters: true,
  });
  expect(loaded.failures).to.deep.equal([]);
  if (answers) loaded.ctx.answers = answers;
  const running = await listen(loaded.ctx, '127.0.0.1:0', silentLogger, { fastPath });
  let n = 0;
  running.server.on('request', () => { n++; });
  return { running, loaded, nodeRequests: () => n };
}

interface Exchange { head: string; status: number; body: Buffer }

/** One request on a new connection; the response read to its end by its Content-Length (none for HEAD and 304). */
function exchange(url: string, method: string, target: string, headers: string[] = []): Promise<Exchange> {
  const u = new URL(url);
  const text = `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n`;
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(u.port), u.hostname, () => s.write(text, 'latin1'));
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`${method} ${target}: no complete answer`)); }, 10_000);
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.toString('latin1', 0, end);
      const status = Number(head.slice(9, 12));
      const length = method === 'HEAD' || status === 304 ? 0 : Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0);
      if (buf.length < end + 4 + length) return;
      clearTimeout(timer);
      s.destroy();
      resolve({ head: head.replace(/\r\nDate: [^\r]+/, '\r\nDate: -'), status, body: buf.subarray(end + 4, end + 4 + length) });
    });
    s.on('error', reject);
  });
}

const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

describe('server: zip packages as stored, on the fast path', function () {
  this.timeout(120_000);
  let plainDir = '';
  let recipeDir = '';
  const servers: Record<string, Server> = {};
  const zips: Array<{ url: string; bytes: Buffer }> = [];

  before(async () => {
    plainDir = tmpDir('sz-plain-');
    const specs = [...zipVersions('web', ['1.0.0', '1.1.0', '1.2.0']), ...zipVersions('db', ['0.1.0', '0.2.0', '0.3.0', '0.4.0', '0.5.0'])];
    for (const s of specs) await writeZipPackage(plainDir, s);
    for (const f of fs.readdirSync(plainDir)) fs.utimesSync(path.join(plainDir, f), FIXED_MTIME, FIXED_MTIME);
    recipeDir = (await builtLayer(plainDir)).dir;
    for (const s of specs) {
      const key = `${s.name}-${s.version}`;
      expect(isRecipe(fs.readFileSync(path.join(recipeDir, `${key}.zip`))), key).to.equal(true);
      zips.push({ url: `/epr/${s.name}/${key}.zip`, bytes: fs.readFileSync(path.join(plainDir, `${key}.zip`)) });
    }
    const [a, b, c, d] = await Promise.all([start(plainDir, true), start(plainDir, false), start(recipeDir, true), start(recipeDir, false)]);
    Object.assign(servers, { plainFast: a, plainNode: b, recipeFast: c, recipeNode: d });
  });
  after(async () => {
    await Promise.all(Object.values(servers).map((s) => s.running.close(500)));
    cleanupTmp();
  });

  /** Every request kind on every server: the same exchange byte for byte, the bytes of the zip. */
  async function compareAll(zip: { url: string; bytes: Buffer }, etag: string): Promise<void> {
    const size = zip.bytes.length;
    const cases: Array<[string, string[]]> = [
      ['GET', []], ['HEAD', []],
      ['GET', ['Range: bytes=0-99']], ['GET', ['Range: bytes=100-']], ['GET', ['Range: bytes=-22']], ['GET', [`Range: bytes=${size - 10}-${size + 1000}`]],
      ['HEAD', ['Range: bytes=5-9']], ['GET', ['Range: bytes=0-0,5-9']], ['GET', ['Range: bytes=9-5']],
      ['GET', [`Range: bytes=${size}-`]], ['HEAD', [`Range: bytes=${size}-`]],
      ['GET', [`If-None-Match: ${etag}`]], ['HEAD', [`If-None-Match: W/"x", ${etag}`]], ['GET', ['If-None-Match: "other"']],
      ['GET', [`If-Modified-Since: ${new Date(Date.now() + 86_400_000).toUTCString()}`]], ['GET', ['If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT']],
      ['GET', [`If-None-Match: ${etag}`, 'Range: bytes=0-9']], ['GET', ['Accept-Encoding: gzip, br', 'User-Agent: Elastic-Agent/8.11.0']],
    ];
    for (const [method, headers] of cases) {
      const what = `${method} ${zip.url} ${headers.join(' | ')}`;
      const got = await Promise.all(Object.values(servers).map((s) => exchange(s.running.url, method, zip.url, headers)));
      for (const [i, x] of got.entries()) {
        expect(x.head, `${what} (${Object.keys(servers)[i]})`).to.equal(got[0].head);
        expect(x.body.equals(got[0].body), `${what} body (${Object.keys(servers)[i]})`).to.equal(true);
      }
      const r = got[0];
      if (r.status === 200 && method === 'GET') expect(sha(r.body), what).to.equal(sha(zip.bytes));
      if (r.status === 206 && method === 'GET') {
        const [, s, e] = /Content-Range: bytes (\d+)-(\d+)\//.exec(r.head)!;
        expect(r.body.equals(zip.bytes.subarray(Number(s), Number(e) + 1)), what).to.equal(true);
      }
      if (headers[0]?.startsWith('Range: bytes=0-99')) expect(r.status).to.equal(206);
      if (headers[0] === `Range: bytes=${size}-`) expect(r.status, what).to.equal(416);
      if (headers[0] === `If-None-Match: ${etag}`) expect(r.status, what).to.equal(304);
    }
  }

  it('every zip: the same exchanges, byte for byte, from plain zips and recipes, on the fast path and through Node', async () => {
    for (const zip of zips) {
      // the first download goes through the route and makes the answer
      const first = await Promise.all(Object.values(servers).map((s) => exchange(s.running.url, 'GET', zip.url)));
      for (const f of first) { expect(f.status).to.equal(200); expect(sha(f.body)).to.equal(sha(zip.bytes)); expect(f.head).to.equal(first[0].head); }
      const etag = /\r\nETag: ([^\r]+)/.exec(first[0].head)![1];
      await new Promise((r) => setTimeout(r, 50)); // its bytes are being read into memory
      await compareAll(zip, etag);
    }
  });

  it('the fast path answers them without Node (all but the 416, which is the route\'s)', async () => {
    const zip = zips[0];
    for (const name of ['plainFast', 'recipeFast']) {
      const s = servers[name];
      await exchange(s.running.url, 'GET', zip.url);
      await new Promise((r) => setTimeout(r, 50));
      const before = s.nodeRequests();
      for (const h of [[], ['Range: bytes=1-2'], ['If-None-Match: *']]) await exchange(s.running.url, 'GET', zip.url, h);
      await exchange(s.running.url, 'HEAD', zip.url);
      expect(s.nodeRequests(), name).to.equal(before);
      await exchange(s.running.url, 'GET', zip.url, [`Range: bytes=${zip.bytes.length}-`]);
      expect(s.nodeRequests(), name).to.equal(before + 1);
    }
  });

  it('out of memory, the same bytes from the file; a recipe\'s rebuilt file removed is rebuilt', async () => {
    const zip = zips[1];
    for (const s of Object.values(servers)) {
      await exchange(s.running.url, 'GET', zip.url);
      s.loaded.ctx.answers!.evictFileBody(zip.url);
    }
    const etag = /\r\nETag: ([^\r]+)/.exec((await exchange(servers.plainNode.running.url, 'HEAD', zip.url)).head)![1];
    for (const s of Object.values(servers)) s.loaded.ctx.answers!.evictFileBody(zip.url);
    await compareAll(zip, etag);
    // the recipe's zip rebuilt in the made-zips folder: removed there, its downloads are whole still
    const key = path.basename(zip.url, '.zip');
    for (const name of ['recipeFast', 'recipeNode']) {
      const s = servers[name];
      const [name_, version] = key.split('-');
      const made = await s.loaded.ctx.zips!.getStored((s.loaded.index.get(name_, version)!.source as ZipSource).archive, key);
      expect(made, name).to.not.equal(undefined);
      fs.rmSync(made!.file);
      s.loaded.ctx.answers!.evictFileBody(zip.url);
      for (let i = 0; i < 3; i++) {
        const r = await exchange(s.running.url, 'GET', zip.url);
        expect(r.status).to.equal(200);
        expect(sha(r.body), `${name} ${i}`).to.equal(sha(zip.bytes));
      }
      expect(fs.existsSync(made!.file), 'rebuilt').to.equal(true);
    }
  });

  it('many zips downloaded under many URLs: the bytes in memory stay within the budget, every answer whole', async () => {
    const sizes = zips.map((z) => z.bytes.length);
    // room for about three zips: a quarter of it is more than the largest
    const budget = Math.max(...sizes) * 4;
    const servers2 = await Promise.all([plainDir, recipeDir].map((d) => start(d, true, new ResponseCache(5000, 64 * 1024 * 1024, budget))));
    try {
      for (const s of servers2) {
        const answers = s.loaded.ctx.answers!;
        let peak = 0;
        const sample = setInterval(() => { peak = Math.max(peak, answers.fileBodyBytes); }, 1);
        for (let round = 0; round < 4; round++) {
          await Promise.all(zips.flatMap((z, i) => [0, 1, 2].map(async (j) => {
            const url = z.url.replace(/^\/epr\/[^/]+\//, `/epr/x${(i + j + round) % 5}/`);
            const r = await exchange(s.running.url, 'GET', url);
            expect(r.status, url).to.equal(200);
            expect(sha(r.body), url).to.equal(sha(z.bytes));
            peak = Math.max(peak, answers.fileBodyBytes);
          })));
        }
        clearInterval(sample);
        expect(answers.fileBodyBudget).to.equal(budget);
        expect(peak, 'bytes held').to.be.at.most(budget);
        expect(peak, 'something was held').to.be.greaterThan(0);
      }
    } finally {
      await Promise.all(servers2.map((s) => s.running.close(500)));
    }
  });

  it('the default budget: 32 MiB for made and stored zips alike', () => {
    expect(new ResponseCache().fileBodyBudget).to.equal(32 * 1024 * 1024);
  });
});
