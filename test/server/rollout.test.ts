/**
 * Rolling updates: readiness (the port is bound, and /health answers, only
 * once the index is loaded) and draining (SIGTERM lets in-flight requests
 * finish), shown with two server processes behind a small round-robin client.
 */
import { expect } from 'chai';
import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { cleanupTmp, tmpDir, writeConfig, writeDirPackage, writeZipPackage } from '../helpers/fixtures.js';
import { cleanEnv, MAIN_JS, PROJECT_ROOT, spawnServer, type ServerProcess } from '../helpers/server.js';
import { RoundRobinClient, runLoad, type Outcome } from '../helpers/round-robin.js';

/** A port on 127.0.0.1 that nobody listens on right now (bound, then released). */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** One probe of /health: refused, or the status it answered (or another error). */
function probeHealth(port: number, p = '/health'): Promise<string> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(String(res.statusCode)));
      res.on('error', (e) => resolve(`error ${e.message}`));
    });
    req.setTimeout(2000, () => req.destroy(new Error('timeout')));
    req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED' ? 'refused' : `error ${e.code ?? e.message}`));
  });
}

function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer!: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms); })]).finally(() => clearTimeout(timer));
}

describe('server process: readiness', function () {
  this.timeout(60000);
  let child: ChildProcess | undefined;
  after(() => { if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); cleanupTmp(); });

  it('/health is not answered before indexing is done: connections are refused until the index is loaded, then 200', async () => {
    // enough packages that indexing takes a while
    const root = tmpDir('epr-readiness-');
    const dir = path.join(root, 'packages');
    for (let i = 0; i < 80; i++) {
      for (const version of ['1.0.0', '1.1.0', '2.0.0']) {
        writeDirPackage(dir, {
          name: `pkg_${i}`,
          version,
          manifest: { categories: ['web', 'security'], policy_templates: [{ name: 't', title: 'T', description: 'd', data_streams: ['a', 'b'] }] },
          dataStreams: { a: { title: 'A', type: 'logs' }, b: { title: 'B', type: 'metrics' } },
          files: Object.fromEntries(Array.from({ length: 5 }, (_, k) => [`data_stream/a/fields/f${k}.yml`, `- name: f${k}\n  type: keyword\n`])),
        });
      }
    }
    const config = writeConfig(root, [dir]);
    const port = await freePort();

    child = spawn(process.execPath, [MAIN_JS, '--config', config, '--address', `127.0.0.1:${port}`], { env: cleanEnv(), cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => { stderr += c.toString(); });
    child.stdout!.resume();
    const exited = new Promise<number | null>((resolve) => child!.on('close', (code) => resolve(code)));

    // probe every 10 ms; note whether indexing had started (the configuration line) and finished (the ready line)
    const probes: Array<{ result: string; indexing: boolean; ready: boolean }> = [];
    const deadline = Date.now() + 30_000;
    for (;;) {
      const indexing = stderr.includes('"message":"configuration"');
      const readyBefore = stderr.includes('"server.address"');
      const result = await probeHealth(port);
      probes.push({ result, indexing, ready: readyBefore });
      if (result === '200') break;
      expect(result, `probe ${probes.length}: only refused connections before the server is ready; stderr: ${stderr}`).to.equal('refused');
      expect(Date.now(), `ready within 30 s; stderr: ${stderr}`).to.be.below(deadline);
      await new Promise((r) => setTimeout(r, 10));
    }
    const whileIndexing = probes.filter((p) => p.indexing && p.result === 'refused').length;
    expect(whileIndexing, 'connections refused while the packages were being indexed').to.be.greaterThan(2);
    const ready = /indexed in (\d+) ms/.exec(stderr);
    expect(ready, stderr).to.not.equal(null);
    expect(stderr).to.include('(240 package versions');
    // once ready it stays ready
    for (let i = 0; i < 5; i++) expect(await probeHealth(port, i % 2 ? '/health?ready=true' : '/health')).to.equal('200');

    child.kill('SIGTERM');
    expect(await withDeadline(exited, 10_000, 'exit after SIGTERM')).to.equal(0);
  });
});

describe('server process: rolling update behind a round-robin client', function () {
  this.timeout(60000);
  let a: ServerProcess | undefined;
  let b: ServerProcess | undefined;
  let client: RoundRobinClient | undefined;
  let paths: string[];
  let big: Buffer;
  const expected = new Map<string, Buffer>();

  before(async () => {
    const root = tmpDir('epr-rollout-');
    const dirs = path.join(root, 'dirs');
    const zips = path.join(root, 'zips');
    for (let i = 0; i < 20; i++) {
      writeDirPackage(dirs, { name: `svc_${i}`, version: '1.0.0', manifest: { categories: ['web'] }, files: { 'docs/extra.md': `# extra ${i}\n`.repeat(50) } });
      writeDirPackage(dirs, { name: `svc_${i}`, version: '1.1.0', manifest: { categories: ['web', 'security'] } });
    }
    // a download big enough to still be going when SIGTERM arrives
    big = crypto.randomBytes(4 * 1024 * 1024);
    writeDirPackage(dirs, { name: 'bulky', version: '1.0.0', files: { 'data/blob.bin': big } });
    await writeZipPackage(zips, { name: 'zipped', version: '2.0.0', manifest: { categories: ['network'] }, files: { 'img/logo.svg': '<svg/>\n' } });
    const config = writeConfig(root, [dirs, zips]);
    [a, b] = await Promise.all([
      spawnServer(['--config', config, '--address', '127.0.0.1:0']),
      spawnServer(['--config', config, '--address', '127.0.0.1:0']),
    ]);
    expected.set('/package/bulky/1.0.0/data/blob.bin', big);
    paths = [
      '/search', '/search?all=true', '/categories', '/health', '/',
      '/package/svc_3/1.1.0/', '/package/svc_7/1.0.0/docs/extra.md', '/package/bulky/1.0.0/data/blob.bin',
      '/epr/svc_5/svc_5-1.0.0.zip', '/epr/zipped/zipped-2.0.0.zip', '/epr/zipped/zipped-2.0.0.zip.sig',
      '/package/zipped/2.0.0/img/logo.svg', '/epr/bulky/bulky-1.0.0.zip',
    ];
  });
  after(async () => {
    client?.close();
    await Promise.all([a?.stop(), b?.stop()]);
    cleanupTmp();
  });

  it('one of two instances gets SIGTERM during the load: 0 failed requests, it exits 0, both served', async () => {
    client = new RoundRobinClient([a!.url, b!.url], {
      timeoutMs: 15_000,
      check: (p, _status, body) => {
        const want = expected.get(p);
        return want && !body.equals(want) ? `${p}: body differs` : undefined;
      },
    });
    const load = runLoad(client, paths, { concurrency: 8, durationMs: 3500 });
    await new Promise((r) => setTimeout(r, 1000));
    const sigtermAt = Date.now();
    a!.child.kill('SIGTERM');
    const report = await load;
    const { code, signal } = await withDeadline(a!.exited, 15_000, 'the stopped instance exits');
    const aAfter = report.outcomes.filter((o) => o.endpoint === a!.url && o.start >= sigtermAt + 1500);

    const show = (list: Outcome[]) => list.slice(0, 10).map((o) => `${o.path} on ${o.endpoint ?? '-'}: ${o.error ?? o.status}`).join('\n');
    expect(report.failed.length, `failed requests:\n${show(report.failed)}`).to.equal(0);
    expect([code, signal], a!.stderr().slice(-2000)).to.deep.equal([0, null]);
    expect(report.servedBy.get(a!.url) ?? 0, 'the stopped instance served before it stopped').to.be.at.least(5);
    expect(report.servedBy.get(b!.url) ?? 0, 'the other instance served').to.be.at.least(5);
    // soon after SIGTERM the stopped instance has no connection left: the load moved over
    expect(aAfter.length, show(aAfter)).to.equal(0);
    expect(report.outcomes.filter((o) => o.endpoint === b!.url && o.start > sigtermAt).length).to.be.at.least(5);
    expect(report.retries, 'connections refused by the stopped instance were retried on the other').to.be.greaterThan(0);
    // requests under way on the stopped instance when SIGTERM came were answered in full
    const inFlight = report.outcomes.filter((o) => o.endpoint === a!.url && o.start < sigtermAt && o.end > sigtermAt);
    expect(inFlight.every((o) => o.ok)).to.equal(true);
    console.log(`      ${report.outcomes.length} requests, ${report.servedBy.get(a!.url)} by the stopped instance (${inFlight.length} in flight at SIGTERM), ${report.retries} retried after a refused connection`);
  });
});
