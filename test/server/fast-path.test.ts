/**
 * Ready answers written on the connection before Node's HTTP server: the
 * bytes are the ones Node writes for the same answer (status line, headers
 * in order, Date, Connection, Keep-Alive, body), and whatever the fast path
 * does not answer goes to Node on the same connection, unharmed.
 */
import { expect } from 'chai';
import net from 'node:net';
import { cleanupTmp } from '../helpers/fixtures.js';
import { writeCorpus, type Corpus } from '../helpers/corpus.js';
import { get } from '../helpers/server.js';
import { listen, loadRegistry, type RunningServer } from '../../server/registry.js';
import { silentLogger } from '../../server/logger.js';
import { parseHead } from '../../server/http/fast-path.js';

async function start(corpus: Corpus, fastPath: boolean): Promise<RunningServer> {
  const loaded = await loadRegistry({
    config: { packagePaths: [corpus.zips, corpus.dirs], cacheTime: { index: 10, search: 600, categories: 600, catchAll: 600 }, source: 'test' },
    validate: true, requireSignatures: true, allowUnknownQueryParameters: true,
  });
  return listen(loaded.ctx, '127.0.0.1:0', silentLogger, { fastPath });
}

/** Sends `bytes` on a new connection; everything the server writes until it is quiet for 200 ms. */
function exchange(url: string, bytes: string): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(u.port), u.hostname, () => s.write(bytes, 'latin1'));
    let out = '';
    let timer: NodeJS.Timeout | undefined;
    const quiet = () => { clearTimeout(timer); timer = setTimeout(() => { s.destroy(); resolve(out); }, 200); };
    s.on('data', (c: Buffer) => { out += c.toString('latin1'); quiet(); });
    s.on('error', reject);
    s.on('close', () => { clearTimeout(timer); resolve(out); });
    quiet();
  });
}

const noDate = (s: string) => s.replace(/\r\nDate: [^\r]+\r\n/g, '\r\nDate: -\r\n');

const req = (target: string, headers: string[] = [], method = 'GET') => `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n`;

describe('server: the fast path for ready answers', function () {
  this.timeout(30000);
  let corpus: Corpus;
  let fast: RunningServer;
  let node: RunningServer;
  let nodeRequests = 0;

  before(async () => {
    corpus = await writeCorpus();
    [fast, node] = await Promise.all([start(corpus, true), start(corpus, false)]);
    fast.server.on('request', () => { nodeRequests++; });
  });
  after(async () => {
    await Promise.all([fast?.close(1000), node?.close(1000)]);
    cleanupTmp();
  });

  const etagOf = async (p: string) => String((await get(node.url, p)).headers.etag);

  const cases: Array<{ name: string; warm: string; bytes: () => Promise<string> }> = [
    { name: '/search', warm: '/search', bytes: async () => req('/search') },
    { name: '/search with a query, User-Agent, Connection: keep-alive', warm: '/search?kibana.version=8.11.0', bytes: async () => req('/search?kibana.version=8.11.0', ['User-Agent: Kibana/8.11.0', 'Connection: keep-alive']) },
    { name: '/categories, gzip', warm: '/categories', bytes: async () => req('/categories', ['Accept-Encoding: gzip, deflate']) },
    { name: '/search?all=true, br', warm: '/search?all=true', bytes: async () => req('/search?all=true', ['accept-encoding: br;q=1.0, gzip;q=0.5']) },
    { name: '/, HEAD', warm: '/', bytes: async () => req('/', [], 'HEAD') },
    { name: 'package info, If-None-Match matching: 304', warm: '/package/web_pkg/1.0.0/', bytes: async () => req('/package/web_pkg/1.0.0/', [`If-None-Match: W/"x", ${await etagOf('/package/web_pkg/1.0.0/')}`]) },
    { name: 'package info, If-None-Match not matching: 200', warm: '/package/web_pkg/1.0.0/', bytes: async () => req('/package/web_pkg/1.0.0/', ['If-None-Match: "nope"']) },
    { name: 'a package file, a range: 206', warm: '/package/web_pkg/1.0.0/LICENSE.txt', bytes: async () => req('/package/web_pkg/1.0.0/LICENSE.txt', ['Range: bytes=10-99']) },
    { name: 'a package file, HEAD with a range', warm: '/package/web_pkg/1.0.0/LICENSE.txt', bytes: async () => req('/package/web_pkg/1.0.0/LICENSE.txt', ['Range: bytes=-5'], 'HEAD') },
    { name: 'a package file, If-Modified-Since: 304', warm: '/package/web_pkg/1.0.0/img/icon.png', bytes: async () => req('/package/web_pkg/1.0.0/img/icon.png', [`If-Modified-Since: ${new Date(Date.now() + 86_400_000).toUTCString()}`]) },
    { name: 'a file in a zip package', warm: '/package/zipped/1.0.0/img/logo.svg', bytes: async () => req('/package/zipped/1.0.0/img/logo.svg') },
  ];

  for (const c of cases) {
    it(`${c.name}: the bytes Node writes, without Node`, async () => {
      await get(fast.url, c.warm);
      await get(node.url, c.warm);
      const bytes = await c.bytes();
      const before = nodeRequests;
      // twice on one connection: both from the fast path
      const [a, b] = await Promise.all([exchange(fast.url, bytes + bytes), exchange(node.url, bytes + bytes)]);
      expect(nodeRequests - before, 'requests Node saw').to.equal(0);
      expect(a).to.match(/^HTTP\/1\.1 (200|206|304) /);
      expect(noDate(a)).to.equal(noDate(b));
    });
  }

  it("a directory package's zip, once made and read into memory: the bytes Node writes, without Node", async () => {
    const p = '/epr/web_pkg/web_pkg-1.0.0.zip';
    await get(fast.url, p);
    await get(node.url, p);
    // its bytes are read into memory after the first download
    await new Promise((r) => setTimeout(r, 200));
    const bytes = req(p, ['User-Agent: Go-http-client/1.1', 'Accept-Encoding: gzip']);
    const before = nodeRequests;
    const [a, b] = await Promise.all([exchange(fast.url, bytes + bytes), exchange(node.url, bytes + bytes)]);
    expect(nodeRequests - before, 'requests Node saw').to.equal(0);
    expect(a).to.match(/^HTTP\/1\.1 200 OK\r\n/);
    expect(a).to.include('Content-Type: application/zip');
    expect(noDate(a)).to.equal(noDate(b));
    // HEAD and ranges are the route's
    const head = req(p, ['Range: bytes=0-9'], 'HEAD');
    const [c, d] = await Promise.all([exchange(fast.url, head), exchange(node.url, head)]);
    expect(noDate(c)).to.equal(noDate(d));
  });

  it('pipelined: a ready answer, then one for Node, then a ready one: in order, the connection handed over', async () => {
    await get(fast.url, '/search');
    await get(node.url, '/search');
    const bytes = req('/search') + req('/nope') + req('/package/web_pkg/1.0.0/img/icon.png', ['Range: bytes=5000-']) + req('/search', [], 'HEAD');
    const [a, b] = await Promise.all([exchange(fast.url, bytes), exchange(node.url, bytes)]);
    expect(noDate(a)).to.equal(noDate(b));
    expect(a.match(/^HTTP\/1\.1 \d+/gm)!.map((l) => l.slice(9))).to.deep.equal(['200', '404', '416', '200']);
  });

  it('a request head split over several packets, and one with a body, are answered as Node answers them', async () => {
    await get(fast.url, '/categories');
    await get(node.url, '/categories');
    const split = async (url: string) => {
      const u = new URL(url);
      const s = net.connect(Number(u.port), u.hostname);
      let out = '';
      s.on('data', (c: Buffer) => { out += c.toString('latin1'); });
      await new Promise((r) => s.once('connect', r));
      for (const part of ['GET /categ', 'ories HTTP/1.1\r\nHo', 'st: x\r\n', '\r\n']) {
        s.write(part);
        await new Promise((r) => setTimeout(r, 30));
      }
      await new Promise((r) => setTimeout(r, 200));
      s.destroy();
      return out;
    };
    const [a, b] = await Promise.all([split(fast.url), split(node.url)]);
    expect(a).to.match(/^HTTP\/1\.1 200 OK/);
    expect(noDate(a)).to.equal(noDate(b));
    const body = 'GET /categories HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc';
    const [c, d] = await Promise.all([exchange(fast.url, body), exchange(node.url, body)]);
    expect(noDate(c)).to.equal(noDate(d));
  });

  it('heads it leaves to Node', () => {
    const ok = 'GET /search HTTP/1.1\r\nHost: x';
    expect(parseHead(ok)).to.include({ method: 'GET', url: '/search' });
    for (const bad of [
      'POST /search HTTP/1.1\r\nHost: x',
      'GET /search HTTP/1.0\r\nHost: x',
      'GET /search HTTP/1.1',
      'GET http://x/search HTTP/1.1\r\nHost: x',
      'GET /search HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked',
      'GET /search HTTP/1.1\r\nHost: x\r\nConnection: close',
      'GET /search HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket',
      'GET /search HTTP/1.1\r\nHost: x\r\nIf-None-Match: "a"\r\nIf-None-Match: "b"',
      'GET /search HTTP/1.1\r\nHost: x\r\n folded',
      'GET /search HTTP/1.1\r\nHost: x\r\nBad Name: 1',
      'GET /search HTTP/1.1\r\nHost: x\r\nX: a\x01b',
      'GET /search HTTP/1.1\nHost: x',
    ]) expect(parseHead(bad), JSON.stringify(bad)).to.equal(undefined);
  });
});
