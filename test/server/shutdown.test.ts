/**
 * SIGTERM: in-flight downloads finish, new connections are refused, exit 0.
 */
import { expect } from 'chai';
import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { cleanupTmp, tmpDir, writeConfig, writeDirPackage } from '../helpers/fixtures.js';
import { get, spawnServer, type ServerProcess } from '../helpers/server.js';
import { readZip } from '../helpers/zip.js';

const BIG = 20 * 1024 * 1024;

function connectOutcome(url: string): Promise<'refused' | 'connected'> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = net.connect(Number(u.port), u.hostname);
    s.once('connect', () => { s.destroy(); resolve('connected'); });
    s.once('error', () => resolve('refused'));
  });
}

async function waitFor(cond: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

describe('server process: graceful shutdown', function () {
  this.timeout(30000);
  let config: string;
  let big: Buffer;
  let server: ServerProcess | undefined;

  before(() => {
    const root = tmpDir();
    big = crypto.randomBytes(BIG);
    writeDirPackage(path.join(root, 'pkgs'), { name: 'bigpkg', version: '1.0.0', files: { 'data/big.bin': big } });
    config = writeConfig(root, [path.join(root, 'pkgs')]);
  });
  afterEach(async () => { await server?.stop(); server = undefined; });
  after(cleanupTmp);

  it('a slow download started before SIGTERM completes; new connections are refused; exit code 0', async () => {
    server = await spawnServer(['--config', config, '--address', '127.0.0.1:0']);
    const url = server.url;
    const u = new URL(url);

    // start the download and stop reading after the first bytes
    const chunks: Buffer[] = [];
    let res!: http.IncomingMessage;
    let firstBytes!: () => void;
    const started = new Promise<void>((resolve) => { firstBytes = resolve; });
    const done = new Promise<void>((resolve, reject) => {
      const req = http.get({ host: u.hostname, port: Number(u.port), path: '/epr/bigpkg/bigpkg-1.0.0.zip', agent: false }, (r) => {
        res = r;
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', resolve);
        r.on('error', reject);
        r.pause();
        firstBytes();
      });
      req.on('error', reject);
    });
    await started;
    expect(res.statusCode).to.equal(200);

    server.child.kill('SIGTERM');
    // the listener closes: new connections are refused while the download is still going
    expect(await waitFor(async () => (await connectOutcome(url)) === 'refused', 5000), 'new connections refused after SIGTERM').to.equal(true);
    let exited = false;
    void server.exited.then(() => { exited = true; });
    await new Promise((r) => setTimeout(r, 300));
    expect(exited, 'the process waits for the download').to.equal(false);

    res.resume();
    await done;
    const zip = Buffer.concat(chunks);
    const entries = await readZip(zip, true);
    expect(entries.filter((e) => !e.name.endsWith('/')).map((e) => e.name)).to.deep.equal([
      'bigpkg-1.0.0/data/big.bin',
      'bigpkg-1.0.0/docs/README.md',
      'bigpkg-1.0.0/manifest.yml',
    ]);
    const bin = entries.find((e) => e.name === 'bigpkg-1.0.0/data/big.bin')!;
    expect(bin.size).to.equal(BIG);
    expect(bin.content!.equals(big)).to.equal(true);

    const { code, signal } = await server.exited;
    expect(signal).to.equal(null);
    expect(code).to.equal(0);
  });

  it('an idle server exits 0 promptly on SIGTERM, even with an idle keep-alive connection', async () => {
    server = await spawnServer(['--config', config, '--address', '127.0.0.1:0']);
    const u = new URL(server.url);
    const agent = new http.Agent({ keepAlive: true });
    await new Promise<void>((resolve, reject) => {
      http.get({ host: u.hostname, port: Number(u.port), path: '/health', agent }, (r) => { r.resume(); r.on('end', resolve); }).on('error', reject);
    });
    const start = Date.now();
    server.child.kill('SIGTERM');
    const { code } = await server.exited;
    agent.destroy();
    expect(code).to.equal(0);
    expect(Date.now() - start).to.be.below(5000);
  });

  it('SIGINT stops it the same way', async () => {
    server = await spawnServer(['--config', config, '--address', '127.0.0.1:0']);
    expect((await get(server.url, '/health')).status).to.equal(200);
    server.child.kill('SIGINT');
    expect((await server.exited).code).to.equal(0);
  });
});
