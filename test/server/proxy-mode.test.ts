/**
 * Proxy mode end to end: the upstream is a second instance of this server
 * (a process with its own packages), the proxying instance runs as a process
 * configured through EPR_* variables. Then the upstream goes away, hangs, or
 * trickles its answers: local answers still go out within the timeout budget.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { cleanupTmp, tmpDir, writeConfig, writeDirPackage, writeZipPackage, PNG_1x1 } from '../helpers/fixtures.js';
import { getJson, rawRequest, runServer, spawnServer, startAll, startRegistry, type RawResponse, type ServerProcess, type TestRegistry } from '../helpers/server.js';
import { readZip } from '../helpers/zip.js';
import { listen } from '../../server/registry.js';
import { silentLogger } from '../../server/logger.js';
import { mergeSearch } from '../../server/proxy.js';

type Entry = { name: string; version: string; title: string; download: string; signature_path?: string };
type Category = { id: string; title: string; count: number; parent_id?: string };

/** `name@version:title` of each entry, in order. */
const described = (list: Entry[]) => list.map((e) => `${e.name}@${e.version}:${e.title}`);

/** The warnings a server process logged (ECS JSON lines on stderr). */
/** The warnings logged so far; log lines are written asynchronously, so first until stderr has been quiet for 100 ms (2 s at most). */
async function warnings(proc: ServerProcess): Promise<Array<Record<string, unknown>>> {
  const end = Date.now() + 2000;
  for (let seen = -1; proc.stderr().length !== seen && Date.now() < end;) {
    seen = proc.stderr().length;
    await new Promise((r) => setTimeout(r, 100));
  }
  return proc.stderr().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>).filter((r) => r['log.level'] === 'warn');
}

async function timed<T>(f: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = Date.now();
  const value = await f();
  return { value, ms: Date.now() - start };
}

/** A TCP server on 127.0.0.1 that accepts connections and then does `onConnection` (or nothing at all). */
async function rawUpstream(onConnection: (s: net.Socket) => void = () => undefined): Promise<{ url: string; connections: () => number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let count = 0;
  const server = net.createServer((s) => {
    count++;
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
    onConnection(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    connections: () => count,
    close: () => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }),
  };
}

/** Every package path of a registry instance and its config. */
interface Side { dir: string; config: string }

function localSide(): Side {
  const root = tmpDir('epr-proxy-local-');
  const dir = path.join(root, 'packages');
  writeDirPackage(dir, { name: 'shared_pkg', version: '1.0.0', title: 'Local shared', manifest: { categories: ['web'] } });
  writeDirPackage(dir, { name: 'local_only', version: '1.0.0', title: 'Local only', manifest: { categories: ['cloud'] } });
  return { dir, config: writeConfig(root, [dir]) };
}

async function upstreamSide(): Promise<Side> {
  const root = tmpDir('epr-proxy-upstream-');
  const dir = path.join(root, 'packages');
  // the same name+version as a local package, with another title: the local one must win
  writeDirPackage(dir, { name: 'shared_pkg', version: '1.0.0', title: 'Upstream shared', manifest: { categories: ['web'] } });
  writeDirPackage(dir, { name: 'shared_pkg', version: '2.0.0', title: 'Upstream newer', manifest: { categories: ['web'] } });
  writeDirPackage(dir, { name: 'remote_dir', version: '0.3.0', title: 'Remote directory', manifest: { categories: ['network', 'security'] }, files: { 'img/icon.png': PNG_1x1 } });
  await writeZipPackage(dir, {
    name: 'remote_zip',
    version: '1.2.0',
    title: 'Remote zip',
    manifest: { categories: ['security'], icons: [{ src: '/img/logo.svg', title: 'logo', type: 'image/svg+xml' }] },
    files: { 'img/logo.svg': '<svg xmlns="http://www.w3.org/2000/svg"/>\n', 'kibana/dashboard/d.json': '{"a":1}\n', 'LICENSE.txt': 'Apache License\n'.repeat(200) },
  });
  return { dir, config: writeConfig(root, [dir]) };
}

/** The proxying instance: proxy mode from EPR_* variables (the way a container is configured). */
function startProxy(local: Side, upstreamUrl: string, extraEnv: Record<string, string> = {}): Promise<ServerProcess> {
  return spawnServer(['--config', local.config, '--address', '127.0.0.1:0'], {
    env: { EPR_FEATURE_PROXY_MODE: 'true', EPR_PROXY_TO: upstreamUrl, EPR_PROXY_ALLOW_INSECURE: 'true', ...extraEnv },
  });
}

describe('server process: proxy mode with another registry instance as the upstream', function () {
  this.timeout(30000);
  let local: Side;
  let up: ServerProcess | undefined;
  let proxy: ServerProcess | undefined;

  before(async () => {
    local = localSide();
    const upstream = await upstreamSide();
    up = await spawnServer(['--config', upstream.config, '--address', '127.0.0.1:0']);
    proxy = await startProxy(local, up.url, { EPR_PROXY_TIMEOUT: '2s' });
  });
  after(async () => {
    await Promise.all([up?.stop(), proxy?.stop()]);
    cleanupTmp();
  });

  it('/search?all=true: the packages of both, sorted; for the same name+version the local one', async () => {
    expect(described(await getJson<Entry[]>(proxy!.url, '/search?all=true'))).to.deep.equal([
      'local_only@1.0.0:Local only',
      'remote_dir@0.3.0:Remote directory',
      'remote_zip@1.2.0:Remote zip',
      'shared_pkg@1.0.0:Local shared',
      'shared_pkg@2.0.0:Upstream newer',
    ]);
    // the query goes to the upstream as well
    expect(described(await getJson<Entry[]>(proxy!.url, '/search?package=shared_pkg&all=true'))).to.deep.equal([
      'shared_pkg@1.0.0:Local shared',
      'shared_pkg@2.0.0:Upstream newer',
    ]);
  });

  it('/search without all=true: still one entry per package, the newest of both sides', async () => {
    expect(described(await getJson<Entry[]>(proxy!.url, '/search'))).to.deep.equal([
      'local_only@1.0.0:Local only',
      'remote_dir@0.3.0:Remote directory',
      'remote_zip@1.2.0:Remote zip',
      'shared_pkg@2.0.0:Upstream newer',
    ]);
  });

  it('/categories: the counts of both added by id (as EPR does), local titles and parents kept', async () => {
    const upstreamAlone = await getJson<Category[]>(up!.url, '/categories');
    expect(upstreamAlone.map((c) => `${c.id}:${c.count}`)).to.deep.equal(['network:1', 'security:2', 'web:1']);
    const merged = await getJson<Category[]>(proxy!.url, '/categories');
    // local: shared_pkg 1.0.0 (web), local_only (cloud); upstream: see above
    expect(merged.map((c) => `${c.id}:${c.count}`)).to.deep.equal(['cloud:1', 'network:1', 'security:2', 'web:2']);
    const web = merged.find((c) => c.id === 'web')!;
    expect([web.title, web.parent_id]).to.deep.equal(['Web Server', 'observability']);
  });

  it('a package only the upstream has: info, files, zip and signature come through byte for byte', async () => {
    const paths = [
      '/package/remote_zip/1.2.0/',
      '/package/remote_zip/1.2.0/docs/README.md',
      '/package/remote_zip/1.2.0/img/logo.svg',
      '/package/remote_zip/1.2.0/LICENSE.txt',
      '/epr/remote_zip/remote_zip-1.2.0.zip',
      '/epr/remote_zip/remote_zip-1.2.0.zip.sig',
      '/package/remote_dir/0.3.0/',
      '/package/remote_dir/0.3.0/img/icon.png',
      '/epr/remote_dir/remote_dir-0.3.0.zip',
    ];
    for (const p of paths) {
      const direct = await rawRequest(up!.url, p);
      const proxied = await rawRequest(proxy!.url, p);
      expect(direct.status, `${p} upstream`).to.equal(200);
      expect(proxied.status, `${p} through the proxy: ${proxied.text.slice(0, 200)}`).to.equal(200);
      expect(proxied.body.equals(direct.body), `${p} same bytes`).to.equal(true);
      expect(proxied.headers['content-type'], `${p} content-type`).to.equal(direct.headers['content-type']);
      expect(proxied.headers['access-control-allow-origin'], `${p} CORS`).to.equal('*');
    }
    const zip = await readZip((await rawRequest(proxy!.url, '/epr/remote_zip/remote_zip-1.2.0.zip')).body, true);
    expect(zip.find((e) => e.name === 'remote_zip-1.2.0/manifest.yml')!.content!.toString()).to.include('title: Remote zip');
    // HEAD: the headers without the body
    const head = await rawRequest(proxy!.url, '/epr/remote_zip/remote_zip-1.2.0.zip', { method: 'HEAD' });
    expect(head.status).to.equal(200);
    expect(head.body.length).to.equal(0);
  });

  it('the download and signature paths of upstream search entries work on the proxy', async () => {
    const entries = await getJson<Entry[]>(proxy!.url, '/search?all=true');
    const remote = entries.find((e) => e.name === 'remote_zip')!;
    expect(remote.signature_path).to.equal('/epr/remote_zip/remote_zip-1.2.0.zip.sig');
    for (const p of [remote.download, remote.signature_path!]) expect((await rawRequest(proxy!.url, p)).status, p).to.equal(200);
  });

  it('a name+version both have is answered from the local package', async () => {
    expect((await getJson<Entry>(proxy!.url, '/package/shared_pkg/1.0.0/')).title).to.equal('Local shared');
    const zip = await readZip((await rawRequest(proxy!.url, '/epr/shared_pkg/shared_pkg-1.0.0.zip')).body, true);
    expect(zip.find((e) => e.name === 'shared_pkg-1.0.0/manifest.yml')!.content!.toString()).to.include('title: Local shared');
    // the upstream's own copy differs, so the check above means something
    expect((await getJson<Entry>(up!.url, '/package/shared_pkg/1.0.0/')).title).to.equal('Upstream shared');
  });

  it('a package neither has: the usual 404 answers', async () => {
    const cases: Array<[string, string]> = [
      ['/package/nothing/1.0.0/', 'package revision not found\n'],
      ['/package/nothing/1.0.0/docs/README.md', 'package revision not found\n'],
      ['/epr/nothing/nothing-1.0.0.zip', 'artifact not found\n'],
      ['/epr/nothing/nothing-1.0.0.zip.sig', 'signature file not found\n'],
    ];
    for (const [p, text] of cases) {
      const r = await rawRequest(proxy!.url, p);
      expect([r.status, r.text], p).to.deep.equal([404, text]);
      expect(r.headers['content-type'], p).to.equal('text/plain; charset=utf-8');
    }
  });

  it('the upstream stops: local answers, quickly, and a warning in the log', async () => {
    await up!.stop();
    expect((await up!.exited).code).to.equal(0);
    const search = await timed(() => rawRequest(proxy!.url, '/search?all=true', { timeoutMs: 15_000 }));
    expect(search.value.status).to.equal(200);
    expect(described(JSON.parse(search.value.text) as Entry[])).to.deep.equal(['local_only@1.0.0:Local only', 'shared_pkg@1.0.0:Local shared']);
    expect(search.ms, 'refused connections cost no timeout').to.be.below(5000);
    const cats = await getJson<Category[]>(proxy!.url, '/categories');
    expect(cats.map((c) => `${c.id}:${c.count}`)).to.deep.equal(['cloud:1', 'web:1']);
    expect((await getJson<Entry>(proxy!.url, '/package/local_only/1.0.0/')).title).to.equal('Local only');
    const gone = await rawRequest(proxy!.url, '/package/remote_zip/1.2.0/');
    expect([gone.status, gone.text]).to.deep.equal([404, 'package revision not found\n']);
    const w = (await warnings(proxy!)).filter((r) => r.message === 'proxy upstream unavailable, answering with local packages only');
    expect(w.length, proxy!.stderr()).to.be.greaterThan(0);
    expect(String(w[0]['url.full'])).to.match(/^http:\/\/127\.0\.0\.1:\d+\//);
    expect(String(w[0]['error.message'])).to.match(/ECONNREFUSED/);
  });
});

describe('server process: proxy mode with an upstream that does not answer', function () {
  this.timeout(30000);
  let local: Side;
  const closers: Array<() => Promise<unknown>> = [];
  before(() => { local = localSide(); });
  after(async () => {
    for (const c of closers.splice(0)) await c();
    cleanupTmp();
  });

  it('connections accepted, never answered: local results within the timeout and one retry (--proxy-timeout 500ms)', async () => {
    const silent = await rawUpstream();
    closers.push(silent.close);
    const proxy = await startProxy(local, silent.url, { EPR_PROXY_TIMEOUT: '500ms' });
    closers.push(() => proxy.stop());
    const search = await timed(() => rawRequest(proxy.url, '/search?all=true', { timeoutMs: 15_000 }));
    expect(search.value.status).to.equal(200);
    expect(described(JSON.parse(search.value.text) as Entry[])).to.deep.equal(['local_only@1.0.0:Local only', 'shared_pkg@1.0.0:Local shared']);
    // two attempts of 500 ms each; no hang beyond them
    expect(search.ms).to.be.within(950, 5000);
    expect(silent.connections()).to.equal(2);
    const missing = await timed(() => rawRequest(proxy.url, '/epr/nothing/nothing-1.0.0.zip', { timeoutMs: 15_000 }));
    expect([missing.value.status, missing.value.text]).to.deep.equal([404, 'artifact not found\n']);
    expect(missing.ms).to.be.within(950, 5000);
    // what is local does not wait for the upstream at all
    const info = await timed(() => rawRequest(proxy.url, '/package/local_only/1.0.0/', { timeoutMs: 15_000 }));
    expect(info.value.status).to.equal(200);
    expect(info.ms).to.be.below(1000);
    const w = (await warnings(proxy)).filter((r) => r.message === 'proxy upstream unavailable, answering with local packages only');
    expect(w.length).to.equal(2);
    expect(String(w[0]['error.message'])).to.include('within 500 ms');
  });

  it('an upstream that trickles its answer forever: cut at the deadline, local results', async () => {
    const timers = new Set<NodeJS.Timeout>();
    const trickle = await rawUpstream((s) => {
      s.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n[\r\n');
      const t = setInterval(() => { if (!s.destroyed) s.write('1\r\n \r\n'); }, 100);
      timers.add(t);
      s.on('close', () => { clearInterval(t); timers.delete(t); });
    });
    closers.push(async () => { for (const t of timers) clearInterval(t); await trickle.close(); });
    const proxy = await startProxy(local, trickle.url, { EPR_PROXY_TIMEOUT: '1s' });
    closers.push(() => proxy.stop());
    const search = await timed(() => rawRequest(proxy.url, '/search', { timeoutMs: 15_000 }));
    expect(search.value.status).to.equal(200);
    expect(described(JSON.parse(search.value.text) as Entry[])).to.deep.equal(['local_only@1.0.0:Local only', 'shared_pkg@1.0.0:Local shared']);
    expect(search.ms).to.be.within(1900, 6000);
  });

  it('an upstream answering garbage or errors: local results', async () => {
    const broken = await rawUpstream((s) => {
      s.once('data', () => s.end('HTTP/1.1 500 Internal Server Error\r\nContent-Length: 6\r\nConnection: close\r\n\r\nboom!\n'));
    });
    closers.push(broken.close);
    const proxy = await startProxy(local, broken.url, { EPR_PROXY_TIMEOUT: '1s' });
    closers.push(() => proxy.stop());
    const search = await timed(() => rawRequest(proxy.url, '/search?all=true', { timeoutMs: 15_000 }));
    expect(search.value.status).to.equal(200);
    expect(described(JSON.parse(search.value.text) as Entry[])).to.deep.equal(['local_only@1.0.0:Local only', 'shared_pkg@1.0.0:Local shared']);
    expect(search.ms).to.be.below(1000);
    const missing = await rawRequest(proxy.url, '/package/nothing/1.0.0/');
    expect([missing.status, missing.text]).to.deep.equal([404, 'package revision not found\n']);
  });
});

describe('server process: proxy-to must be https unless insecure is allowed', function () {
  this.timeout(30000);
  let local: Side;
  before(() => { local = localSide(); });
  after(cleanupTmp);

  const results = () => startAll({
    env: () => runServer(['--config', local.config, '--address', '127.0.0.1:0'], { env: { EPR_FEATURE_PROXY_MODE: 'true', EPR_PROXY_TO: 'http://127.0.0.1:9/' } }),
    flags: () => runServer(['--config', local.config, '--address', '127.0.0.1:0', '--feature-proxy-mode', '--proxy-to', 'http://127.0.0.1:9/']),
    timeout: () => runServer(['--config', local.config, '--address', '127.0.0.1:0', '--feature-proxy-mode', '--proxy-to', 'https://127.0.0.1:9/', '--proxy-timeout', 'soon']),
  });
  let run: ReturnType<typeof results>;
  before(() => { run = results(); });

  it('http proxy-to without --proxy-allow-insecure (from EPR_* variables): refused at start, exit 2, one clear line', async () => {
    const r = await run.env;
    expect(r.code).to.equal(2);
    expect(r.stderr).to.include('error: proxy-to http://127.0.0.1:9/ is not https; use an https URL or --proxy-allow-insecure\n');
    expect(r.stderr).to.not.match(/\n\s+at /);
    expect(r.stdout).to.not.include('serving');
  });

  it('the same from flags', async () => {
    const r = await run.flags;
    expect(r.code).to.equal(2);
    expect(r.stderr).to.include('error: proxy-to http://127.0.0.1:9/ is not https; use an https URL or --proxy-allow-insecure\n');
  });

  it('a --proxy-timeout that is not a duration: refused at start', async () => {
    const r = await run.timeout;
    expect(r.code).to.equal(2);
    expect(r.stderr).to.include('error: --proxy-timeout must be a duration like 10s, 2s or 500ms, got "soon"\n');
  });
});

describe('server process: proxy mode with an https upstream', function () {
  this.timeout(30000);
  let local: Side;
  let cert: Buffer | undefined;
  let key: Buffer | undefined;
  let upstream: TestRegistry | undefined;
  let tlsUrl = '';
  let closeTls: (() => Promise<void>) | undefined;
  const procs: ServerProcess[] = [];

  before(async function () {
    local = localSide();
    const root = tmpDir('epr-proxy-tls-');
    const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', path.join(root, 'key.pem'), '-out', path.join(root, 'cert.pem')], { stdio: 'ignore' });
    if (made.status !== 0) { this.skip(); return; }
    cert = fs.readFileSync(path.join(root, 'cert.pem'));
    key = fs.readFileSync(path.join(root, 'key.pem'));
    const side = await upstreamSide();
    // an in-process instance, served over TLS with a self-signed certificate
    upstream = await startRegistry([side.dir]);
    const tls = await listen(upstream.loaded.ctx, '127.0.0.1:0', silentLogger, { tls: { cert, key, minVersion: 'TLSv1.2' } });
    tlsUrl = `${tls.url}/`;
    closeTls = () => tls.close(1000);
  });
  after(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await closeTls?.();
    await upstream?.close();
    cleanupTmp();
  });

  it('https with a certificate the proxy cannot verify: not trusted, local answers and a warning', async () => {
    const proxy = await spawnServer(['--config', local.config, '--address', '127.0.0.1:0', '--feature-proxy-mode', '--proxy-to', tlsUrl, '--proxy-timeout', '2s']);
    procs.push(proxy);
    const r: RawResponse = await rawRequest(proxy.url, '/search?all=true', { timeoutMs: 15_000 });
    expect(described(JSON.parse(r.text) as Entry[])).to.deep.equal(['local_only@1.0.0:Local only', 'shared_pkg@1.0.0:Local shared']);
    const w = (await warnings(proxy)).filter((x) => x.message === 'proxy upstream unavailable, answering with local packages only');
    expect(w.length).to.be.greaterThan(0);
    expect(String(w[0]['error.message'])).to.match(/certificate/i);
  });

  it('https with --proxy-allow-insecure: merged answers', async () => {
    const proxy = await spawnServer(['--config', local.config, '--address', '127.0.0.1:0', '--feature-proxy-mode', '--proxy-to', tlsUrl, '--proxy-allow-insecure', '--proxy-timeout', '2s']);
    procs.push(proxy);
    expect(described(await getJson<Entry[]>(proxy.url, '/search?all=true')).map((s) => s.split(':')[0])).to.deep.equal([
      'local_only@1.0.0', 'remote_dir@0.3.0', 'remote_zip@1.2.0', 'shared_pkg@1.0.0', 'shared_pkg@2.0.0',
    ]);
    const sig = await rawRequest(proxy.url, '/epr/remote_zip/remote_zip-1.2.0.zip.sig');
    expect(sig.status).to.equal(200);
    expect(sig.text).to.include('signature of remote_zip-1.2.0');
  });
});

describe('proxy mode: merging search answers (pure)', () => {
  const e = (name: string, version: string, title = 'local') => ({ name, version, title });
  const ids = (list: Array<Record<string, unknown>>) => list.map((p) => `${String(p.name)}@${String(p.version)}:${String(p.title)}`);

  it('without all=true one entry per package: the newer side wins, a tie goes to the local entry', () => {
    expect(ids(mergeSearch([e('a', '1.0.0'), e('b', '2.0.0'), e('c', '1.0.0')], [e('a', '1.1.0', 'up'), e('b', '2.0.0', 'up'), e('c', '0.9.0', 'up'), e('d', '0.1.0', 'up')])))
      .to.deep.equal(['a@1.1.0:up', 'b@2.0.0:local', 'c@1.0.0:local', 'd@0.1.0:up']);
  });

  it('a pre-release is older than its release; the legacy experimental search prefers a stable version', () => {
    expect(ids(mergeSearch([e('a', '2.0.0-beta.1')], [e('a', '2.0.0', 'up')]))).to.deep.equal(['a@2.0.0:up']);
    expect(ids(mergeSearch([e('a', '1.5.0')], [e('a', '2.0.0-beta.1', 'up')]))).to.deep.equal(['a@2.0.0-beta.1:up']);
    expect(ids(mergeSearch([e('a', '1.5.0')], [e('a', '2.0.0-beta.1', 'up')], { preferStable: true }))).to.deep.equal(['a@1.5.0:local']);
  });

  it('with all=true every version of both, local first for the same name+version', () => {
    expect(ids(mergeSearch([e('a', '1.0.0')], [e('a', '1.0.0', 'up'), e('a', '0.5.0', 'up')], { all: true }))).to.deep.equal(['a@0.5.0:up', 'a@1.0.0:local']);
  });
});
