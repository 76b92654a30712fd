/**
 * The access log as the image runs it (default flags: one ECS line per
 * request on stderr) when the reader of that pipe is slow or stopped: the
 * server keeps answering, every line arrives once the reader reads again,
 * and on SIGTERM the process waits for its lines before it exits. Also the
 * bound on what may wait: lines past it are dropped, counted and reported.
 */
import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { cleanupTmp, tmpDir, writeConfig, writeDirPackage } from '../helpers/fixtures.js';
import { cleanEnv, MAIN_JS, PROJECT_ROOT } from '../helpers/server.js';
import { accessFields, createLogger, type AccessRecord } from '../../server/logger.js';

/** ~330 bytes a line: 6,000 lines are several times what a pipe and the reader's buffer hold. */
const REQUESTS = 6000;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address() as net.AddressInfo; s.close(() => resolve(port)); });
  });
}

type Child = ChildProcessByStdio<null, Readable, Readable>;

/** The server with its stderr a pipe nobody reads yet; ready once /health answers. */
async function startUnread(config: string): Promise<{ child: Child; url: string }> {
  const port = await freePort();
  const child = spawn(process.execPath, [MAIN_JS, '--config', config, '--address', `127.0.0.1:${port}`], { env: cleanEnv(), cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.resume();
  const url = `http://127.0.0.1:${port}`;
  const end = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    if (Date.now() > end) { child.kill('SIGKILL'); throw new Error('server not ready in 15 s'); }
    try { if ((await request(url, '/health', 2000)) === 200) return { child, url }; } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

function request(base: string, p: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${base}${p}`, { agent }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode ?? 0)); });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${p} took more than ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/** `count` requests, 16 at a time: a 200 (/search) every tenth, 404s with their own path otherwise. */
async function load(base: string, count: number): Promise<string[]> {
  const paths = Array.from({ length: count }, (_, i) => (i % 10 === 0 ? `/search?n=${i}` : `/nothing/${i}`));
  let next = 0;
  const worker = async () => {
    while (next < paths.length) {
      const p = paths[next++];
      const status = await request(base, p, 5000);
      expect(status, p).to.equal(p.startsWith('/search') ? 200 : 404);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  return paths;
}

/** Everything the stream gives from now until it ends. */
function readAll(stream: Readable): Promise<string> {
  return new Promise((resolve) => {
    let s = '';
    stream.setEncoding('utf8');
    stream.on('data', (c: string) => { s += c; });
    stream.on('end', () => resolve(s));
  });
}

function accessUrls(log: string): string[] {
  return log.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((r) => r.message === 'access').map((r) => r['url.original'] as string);
}

describe('server process: the access log with a slow reader', function () {
  this.timeout(60_000);
  let config: string;
  let child: Child | undefined;

  before(() => {
    const root = tmpDir();
    writeDirPackage(path.join(root, 'pkgs'), { name: 'logs', version: '1.0.0' });
    config = writeConfig(root, [path.join(root, 'pkgs')]);
  });
  afterEach(() => { if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); child = undefined; });
  after(() => { agent.destroy(); cleanupTmp(); });

  it('a stopped reader holds up no request, and every line arrives once it reads again', async () => {
    const s = await startUnread(config);
    child = s.child;
    const paths = await load(s.url, REQUESTS);
    // still answering at once with far more lines waiting than the pipe holds
    expect(await request(s.url, '/health', 1000)).to.equal(200);
    const log = readAll(s.child.stderr);
    // the lines of those requests come out of memory now; then a clean stop
    await new Promise((r) => setTimeout(r, 500));
    s.child.kill('SIGTERM');
    const text = await log;
    const urls = accessUrls(text);
    expect(urls.filter((u) => u !== '/health').sort()).to.deep.equal([...paths].sort());
    expect(text).to.not.include('dropped');
  });

  it('SIGTERM with lines still waiting: the process waits for its reader, then exits 0 with every line written', async () => {
    const s = await startUnread(config);
    child = s.child;
    const paths = await load(s.url, REQUESTS);
    const exited = new Promise<number | null>((resolve) => s.child.on('exit', (code) => resolve(code)));
    s.child.kill('SIGTERM');
    // the server has stopped serving, but its lines are not out yet: it must not be gone
    await new Promise((r) => setTimeout(r, 1500));
    expect(s.child.exitCode, 'exited with lines unwritten').to.equal(null);
    const text = await readAll(s.child.stderr);
    expect(await exited).to.equal(0);
    expect(accessUrls(text).filter((u) => u !== '/health').sort()).to.deep.equal([...paths].sort());
    const last = text.trimEnd().split('\n').at(-1)!;
    expect(JSON.parse(last)).to.include({ message: 'stopped' });
  });
});

describe('logger: the bound on lines waiting for a reader', function () {
  this.timeout(20_000);
  let dir: string;
  before(() => { dir = tmpDir(); });
  after(cleanupTmp);

  it('past the bound lines are dropped, counted, and one warning says how many once the reader catches up', async function () {
    const fifo = path.join(dir, 'log.fifo');
    if (spawnSync('mkfifo', [fifo]).status !== 0) this.skip();
    // read and write: opening does not wait for a reader, and nothing reads yet
    const fd = fs.openSync(fifo, 'r+');
    const logger = createLogger('info', 'ecs', { fd, maxBufferedBytes: 64 * 1024 });
    const total = 5000;
    for (let i = 0; i < total; i++) {
      logger.info('access', { 'url.original': `/line/${i}` });
      // a new batch every 50 lines, as requests come over several turns of the event loop
      if (i % 50 === 49) await new Promise((r) => setImmediate(r));
    }
    const reader = new net.Socket({ fd: fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK), readable: true, writable: false });
    let text = '';
    reader.on('data', (c: Buffer) => { text += c.toString('utf8'); });
    expect(await logger.flush(10_000)).to.equal(true);
    await new Promise((r) => setTimeout(r, 200));
    reader.destroy();
    fs.closeSync(fd);
    const records = text.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const written = records.filter((r) => r.message === 'access');
    const warnings = records.filter((r) => r['log.level'] === 'warn');
    expect(warnings).to.have.length(1);
    expect(warnings[0].message).to.match(/^log output was not keeping up: \d+ log line\(s\) dropped$/);
    const dropped = warnings[0]['log.dropped_lines'] as number;
    expect(dropped).to.be.greaterThan(0);
    expect(written.length + dropped).to.equal(total);
    // what was written is in order, with none repeated
    const seen = written.map((r) => Number(String(r['url.original']).slice('/line/'.length)));
    expect(seen).to.deep.equal([...seen].sort((a, b) => a - b));
    expect(new Set(seen).size).to.equal(seen.length);
  });

  it('--log-type dev lines are short and human, fields after the message', () => {
    const chunks: string[] = [];
    const logger = createLogger('info', 'dev', { write: (c) => chunks.push(c) });
    logger.debug('hidden');
    logger.info('access', { 'url.original': '/search', 'http.response.status_code': 200, 'user_agent.original': undefined });
    expect(chunks).to.have.length(1);
    expect(chunks[0]).to.match(/^\d{4}-\d\d-\d\dT[\d:.]+Z INFO  access {2}url\.original=\/search http\.response\.status_code=200\n$/);
  });

  it('ECS lines carry @timestamp, log.level, message, ecs.version and the fields as given', () => {
    const chunks: string[] = [];
    const logger = createLogger('warn', 'ecs', { write: (c) => chunks.push(c) });
    logger.info('hidden');
    logger.warn('package skipped', { 'error.message': 'bad "quote"', 'package.count': 3 });
    expect(chunks).to.have.length(1);
    const rec = JSON.parse(chunks[0]) as Record<string, unknown>;
    expect(rec).to.include({ 'log.level': 'warn', message: 'package skipped', 'error.message': 'bad "quote"', 'package.count': 3 });
    expect(rec['@timestamp']).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(rec['ecs.version']).to.be.a('string');
    expect(Object.keys(rec)).to.not.include.members(['process.pid', 'host.hostname', 'level', 'time', 'msg']);
  });

  it('an access line is byte for byte the record info("access", fields) writes', () => {
    const chunks: string[] = [];
    const logger = createLogger('info', 'ecs', { write: (c) => chunks.push(c) });
    const records: AccessRecord[] = [
      { method: 'GET', url: '/search?kibana.version=8.11.0', status: 200, durationNs: 123456, userAgent: 'Kibana/8.11.0 "quoted" \\ back', sourceAddress: '127.0.0.1' },
      { method: 'HEAD', url: '/package/a/1.0.0/img/%E2%9C%93.svg', status: 304, durationNs: 1, userAgent: undefined, sourceAddress: '::1' },
      { method: 'GET', url: '/x', status: 404, durationNs: 0, userAgent: 'tab\tand\u0001control', sourceAddress: undefined },
    ];
    const noTime = (l: string) => l.replace(/,"@timestamp":"[^"]+"/, '');
    for (const r of records) {
      logger.access(r);
      logger.info('access', accessFields(r));
      const [fast, general] = chunks.splice(0, 2);
      expect(noTime(fast)).to.equal(noTime(general));
      expect(JSON.parse(fast)['@timestamp']).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    }
    createLogger('warn', 'ecs', { write: (c) => chunks.push(c) }).access(records[0]);
    expect(chunks, 'no access line above info').to.deep.equal([]);
  });
});
