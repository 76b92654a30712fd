/**
 * HTTPS (--tls-cert/--tls-key/--tls-min-version) and Prometheus metrics
 * (--metrics-address), as processes. The certificate is made with openssl;
 * the TLS tests are skipped where it is missing.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';
import { cleanupTmp, tmpDir, writeConfig, writeDirPackage } from '../helpers/fixtures.js';
import { get, runServer, spawnServer, type ServerProcess } from '../helpers/server.js';

function httpsGet(url: string, ca: Buffer, opts: https.RequestOptions = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, agent: false, ...opts }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.setTimeout(5000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

describe('server process: TLS and metrics', function () {
  this.timeout(30000);
  let root: string;
  let config: string;
  let cert: string | undefined;
  let key: string | undefined;
  let server: ServerProcess | undefined;

  before(() => {
    root = tmpDir();
    writeDirPackage(path.join(root, 'pkgs'), { name: 'tlspkg', version: '1.0.0' });
    config = writeConfig(root, [path.join(root, 'pkgs')]);
    const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', path.join(root, 'key.pem'), '-out', path.join(root, 'cert.pem')], { stdio: 'ignore' });
    if (made.status === 0) {
      cert = path.join(root, 'cert.pem');
      key = path.join(root, 'key.pem');
    }
  });
  afterEach(async () => { await server?.stop(); server = undefined; });
  after(cleanupTmp);

  describe('TLS', () => {
    beforeEach(function () { if (!cert) this.skip(); });

    it('--tls-cert and --tls-key: HTTPS on the address', async () => {
      server = await spawnServer(['--config', config, '--address', '127.0.0.1:0', '--tls-cert', cert!, '--tls-key', key!]);
      expect(server.url).to.match(/^https:\/\/127\.0\.0\.1:\d+$/);
      const ca = fs.readFileSync(cert!);
      expect((await httpsGet(`${server.url}/health`, ca)).status).to.equal(200);
      const search = await httpsGet(`${server.url}/search`, ca);
      expect((JSON.parse(search.body) as Array<{ name: string }>).map((p) => p.name)).to.deep.equal(['tlspkg']);
    });

    it('--tls-min-version 1.3 refuses a TLS 1.2 client', async () => {
      server = await spawnServer(['--config', config, '--address', '127.0.0.1:0', '--tls-cert', cert!, '--tls-key', key!, '--tls-min-version', '1.3']);
      const ca = fs.readFileSync(cert!);
      let failed = false;
      try {
        await httpsGet(`${server.url}/health`, ca, { maxVersion: 'TLSv1.2' } as tls.ConnectionOptions);
      } catch {
        failed = true;
      }
      expect(failed).to.equal(true);
      expect((await httpsGet(`${server.url}/health`, ca, { minVersion: 'TLSv1.3' } as tls.ConnectionOptions)).status).to.equal(200);
    });

    it('EPR_TLS_CERT and EPR_TLS_KEY work too', async () => {
      server = await spawnServer(['--config', config, '--address', '127.0.0.1:0'], { env: { EPR_TLS_CERT: cert!, EPR_TLS_KEY: key! } });
      expect(server.url).to.match(/^https:/);
    });
  });

  describe('TLS settings that cannot work stop the start', () => {
    it('a certificate without a key', async () => {
      const r = await runServer(['--config', config, '--address', '127.0.0.1:0', '--tls-cert', path.join(root, 'cert.pem')]);
      expect(r.code).to.equal(2);
      expect(r.stderr).to.include('TLS needs both --tls-cert and --tls-key');
    });

    it('a file that cannot be read', async () => {
      const r = await runServer(['--config', config, '--address', '127.0.0.1:0', '--tls-cert', '/nonexistent/cert.pem', '--tls-key', '/nonexistent/key.pem']);
      expect(r.code).to.equal(2);
      expect(r.stderr).to.include('cannot read --tls-cert /nonexistent/cert.pem: ENOENT');
    });

    it('an unknown minimum version', async () => {
      const r = await runServer(['--config', config, '--address', '127.0.0.1:0', '--tls-min-version', '1.4']);
      expect(r.code).to.equal(2);
      expect(r.stderr).to.include('--tls-min-version must be 1.0, 1.1, 1.2 or 1.3, got "1.4"');
    });
  });

  describe('metrics', () => {
    it('--metrics-address serves Prometheus metrics on its own port, by route pattern', async () => {
      server = await spawnServer(['--config', config, '--address', '127.0.0.1:0', '--metrics-address', '127.0.0.1:0']);
      const line = server.stderr().split('\n').find((l) => l.includes('"metrics.address"'));
      expect(line, 'a log line with metrics.address').to.not.equal(undefined);
      const metricsUrl = String((JSON.parse(line!) as Record<string, unknown>)['metrics.address']);
      expect(metricsUrl).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);

      await get(server.url, '/search');
      await get(server.url, '/package/tlspkg/1.0.0/');
      await get(server.url, '/no-such-route-a1b2c3');
      const m = await get(metricsUrl, '/metrics');
      expect(m.status).to.equal(200);
      expect(m.text).to.include('epr_http_requests_total');
      expect(m.text).to.include('epr_number_indexed_packages 1');
      expect(m.text).to.match(/epr_service_info\{version="1\.40\.1"\} 1/);
      // unknown paths must not become label values (cardinality)
      expect(m.text).to.not.include('a1b2c3');
      expect(m.text).to.not.include('tlspkg');
      // the registry port does not serve them
      expect((await get(server.url, '/metrics')).status).to.equal(404);
    });

    it('without --metrics-address there is no metrics endpoint', async () => {
      server = await spawnServer(['--config', config, '--address', '127.0.0.1:0']);
      expect(server.stderr()).to.not.include('"metrics.address"');
      expect((await get(server.url, '/metrics')).status).to.equal(404);
    });
  });
});
