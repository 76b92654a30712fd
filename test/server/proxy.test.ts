/**
 * Proxy mode against a fake upstream registry on 127.0.0.1.
 */
import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { cleanupTmp, tmpDir, writeConfig, writeDirPackage } from '../helpers/fixtures.js';
import { DEFAULT_TEST_CACHE, get, getJson, runServer } from '../helpers/server.js';
import { listen, loadRegistry, type RunningServer } from '../../server/registry.js';
import { silentLogger } from '../../server/logger.js';
import { Upstream } from '../../server/proxy.js';

type Entry = { name: string; version: string; title: string };

const UPSTREAM_ZIP = Buffer.from('PK fake zip bytes from upstream');

function fakeUpstream(): Promise<{ url: string; requests: string[]; server: http.Server }> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req.url ?? '');
    const json = (v: unknown) => { res.writeHead(200, { 'Content-Type': 'application/json' }); res.end(JSON.stringify(v)); };
    const p = (req.url ?? '').split('?')[0];
    if (p === '/search') {
      json([
        { name: 'local_pkg', version: '1.0.0', title: 'Upstream copy of local_pkg' },
        { name: 'aaa_remote', version: '2.0.0', title: 'Remote only' },
        { name: 'local_pkg', version: '0.5.0', title: 'Older, only upstream' },
      ]);
    } else if (p === '/categories') {
      json([{ id: 'web', title: 'Web Server', count: 5, parent_id: 'observability', parent_title: 'Observability' }, { id: 'aws', title: 'AWS', count: 2 }]);
    } else if (p === '/package/aaa_remote/2.0.0/') {
      json({ name: 'aaa_remote', version: '2.0.0', title: 'Remote only' });
    } else if (p === '/epr/aaa_remote/aaa_remote-2.0.0.zip') {
      res.writeHead(200, { 'Content-Type': 'application/zip' });
      res.end(UPSTREAM_ZIP);
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not here\n');
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, requests, server })));
}

async function proxyRegistry(paths: string[], upstreamUrl: string): Promise<RunningServer> {
  const upstream = new Upstream({ baseUrl: upstreamUrl, allowInsecure: true, logger: silentLogger, timeoutMs: 2000, retries: 0 });
  const loaded = await loadRegistry({
    config: { packagePaths: paths, cacheTime: DEFAULT_TEST_CACHE, source: 'test' },
    validate: true, requireSignatures: true, allowUnknownQueryParameters: true, upstream,
  });
  return listen(loaded.ctx, '127.0.0.1:0', silentLogger);
}

describe('server: proxy mode', function () {
  this.timeout(20000);
  let pkgs: string;
  let up: Awaited<ReturnType<typeof fakeUpstream>>;
  let reg: RunningServer;

  before(async () => {
    pkgs = tmpDir();
    writeDirPackage(pkgs, { name: 'local_pkg', version: '1.0.0', title: 'Local', manifest: { categories: ['web'] } });
    up = await fakeUpstream();
    reg = await proxyRegistry([pkgs], up.url);
  });
  after(async () => {
    await reg?.close(1000);
    await new Promise((r) => up?.server.close(r));
    cleanupTmp();
  });

  it('/search merges the upstream answer: local wins for the same name+version, sorted by name then version', async () => {
    // all=true: every version of both sides (without it only the newest of each package is kept)
    const r = await getJson<Entry[]>(reg.url, '/search?all=true');
    expect(r.map((e) => `${e.name}@${e.version}:${e.title}`)).to.deep.equal([
      'aaa_remote@2.0.0:Remote only',
      'local_pkg@0.5.0:Older, only upstream',
      'local_pkg@1.0.0:Local',
    ]);
  });

  it('the query string is passed on to the upstream', async () => {
    up.requests.length = 0;
    await get(reg.url, '/search?package=local_pkg&kibana.version=8.1.0');
    expect(up.requests).to.deep.equal(['/search?package=local_pkg&kibana.version=8.1.0']);
  });

  it('/categories adds the counts by id', async () => {
    const r = await getJson<Array<{ id: string; count: number }>>(reg.url, '/categories');
    expect(r.map((c) => `${c.id}:${c.count}`)).to.deep.equal(['aws:2', 'web:6']);
  });

  it('a package only the upstream has: its info and its download come from the upstream', async () => {
    expect((await getJson<Entry>(reg.url, '/package/aaa_remote/2.0.0/')).title).to.equal('Remote only');
    const zip = await get(reg.url, '/epr/aaa_remote/aaa_remote-2.0.0.zip');
    expect(zip.status).to.equal(200);
    expect(zip.body.equals(UPSTREAM_ZIP)).to.equal(true);
    expect(zip.headers['access-control-allow-origin']).to.equal('*');
  });

  it('a local package is served locally', async () => {
    up.requests.length = 0;
    expect((await getJson<Entry>(reg.url, '/package/local_pkg/1.0.0/')).title).to.equal('Local');
    expect(up.requests).to.deep.equal([]);
  });

  it('what neither has: the usual 404 texts', async () => {
    expect((await get(reg.url, '/package/nothing/1.0.0/')).text).to.equal('package revision not found\n');
    expect((await get(reg.url, '/epr/nothing/nothing-1.0.0.zip')).text).to.equal('artifact not found\n');
    expect((await get(reg.url, '/epr/nothing/nothing-1.0.0.zip.sig')).text).to.equal('signature file not found\n');
  });

  it('an upstream that is down: local answers only, quickly', async () => {
    const dead = await fakeUpstream();
    await new Promise((r) => dead.server.close(r));
    const lonely = await proxyRegistry([pkgs], dead.url);
    try {
      const start = Date.now();
      const r = await getJson<Entry[]>(lonely.url, '/search');
      expect(r.map((e) => e.name)).to.deep.equal(['local_pkg']);
      expect((await get(lonely.url, '/package/nothing/1.0.0/')).status).to.equal(404);
      expect(Date.now() - start).to.be.below(5000);
    } finally {
      await lonely.close(1000);
    }
  });

  it('a plain http upstream needs --proxy-allow-insecure', async () => {
    expect(() => new Upstream({ baseUrl: 'http://127.0.0.1:1/', allowInsecure: false, logger: silentLogger })).to.throw(/not https/);
    const config = writeConfig(tmpDir(), [pkgs]);
    const r = await runServer(['--feature-proxy-mode', '--proxy-to', 'http://127.0.0.1:1/', '--config', config, '--dry-run']);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.include('\nerror: proxy-to http://127.0.0.1:1/ is not https; use an https URL or --proxy-allow-insecure\n');
  });
});
