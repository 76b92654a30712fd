/**
 * Real registries for the OCI tests: Debian's docker-registry (distribution
 * v2) on a free 127.0.0.1 port, open or with basic auth through
 * ../shared/ci/registry-up.sh, or with token auth or TLS from a config of our own.
 * Each is stopped, and its storage removed, by stop().
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { PROJECT_ROOT } from './server.js';

export interface RunningOciRegistry {
  /** 127.0.0.1:<port> */
  host: string;
  port: number;
  pid: number;
  stop(): void;
}

import { freePort } from './builder-cli.js';

export const freeTcpPort = freePort;

/** An htpasswd file (bcrypt) with one user. */
export function writeHtpasswd(dir: string, user: string, password: string): string {
  const r = spawnSync('htpasswd', ['-Bbn', user, password], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`htpasswd: ${r.stderr}`);
  const file = path.join(dir, 'htpasswd');
  fs.writeFileSync(file, r.stdout);
  return file;
}

/** The shared CI script's registry (open, or basic auth with `htpasswd`). */
export async function startOciRegistry(htpasswd?: string): Promise<RunningOciRegistry> {
  const port = await freeTcpPort();
  const script = path.join(PROJECT_ROOT, '..', 'shared', 'ci', 'registry-up.sh');
  const r = spawnSync('bash', [script, String(port), ...(htpasswd ? [htpasswd] : [])], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`registry-up.sh: ${r.stderr}`);
  const pid = Number(r.stdout.trim().split('\n').pop());
  // the script keeps storage in a temporary folder named by the config path on the command line
  let dir: string | undefined;
  try {
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const config = cmdline.find((a) => a.endsWith('config.yml'));
    if (config && config.startsWith(os.tmpdir())) dir = path.dirname(config);
  } catch {
    // no /proc: the folder stays behind in the temporary directory
  }
  return { host: `127.0.0.1:${port}`, port, pid, stop: () => stopProcess(pid, dir) };
}

export interface TokenAuthConfig {
  realm: string;
  service: string;
  issuer: string;
  rootCertBundle: string;
}

/** docker-registry with `auth: token`, storage and log in `dir`. */
export function startTokenRegistry(dir: string, auth: TokenAuthConfig): Promise<RunningOciRegistry> {
  return startConfiguredRegistry(dir, (port) => [
    `http: {addr: 127.0.0.1:${port}}`,
    'auth:',
    '  token:',
    `    realm: ${auth.realm}`,
    `    service: ${auth.service}`,
    `    issuer: ${auth.issuer}`,
    `    rootcertbundle: ${auth.rootCertBundle}`,
  ]);
}

/** docker-registry over https with a self-signed certificate for 127.0.0.1 (what --insecure-registry is for). */
export function startTlsRegistry(dir: string): Promise<RunningOciRegistry> {
  const cert = path.join(dir, 'tls-cert.pem');
  const key = path.join(dir, 'tls-key.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-days', '2'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl: ${r.stderr}`);
  return startConfiguredRegistry(dir, (port) => [`http: {addr: 127.0.0.1:${port}, tls: {certificate: ${cert}, key: ${key}}}`]);
}

async function startConfiguredRegistry(dir: string, lines: (port: number) => string[]): Promise<RunningOciRegistry> {
  const port = await freeTcpPort();
  const config = path.join(dir, 'registry.yml');
  fs.writeFileSync(config, ['version: 0.1', 'log: {level: warn}', `storage: {filesystem: {rootdirectory: ${path.join(dir, 'data')}}, delete: {enabled: true}}`, ...lines(port), ''].join('\n'));
  const log = fs.openSync(path.join(dir, 'registry.log'), 'w');
  const child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', log, log], detached: true });
  fs.closeSync(log);
  child.unref();
  const pid = child.pid!;
  for (let i = 0; i < 100; i++) {
    const code = spawnSync('curl', ['-sk', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${port}/v2/`, `https://127.0.0.1:${port}/v2/`], { encoding: 'utf8' }).stdout;
    if (/200|401/.test(code)) return { host: `127.0.0.1:${port}`, port, pid, stop: () => stopProcess(pid) };
    await new Promise((r) => setTimeout(r, 100));
  }
  stopProcess(pid);
  throw new Error(`docker-registry did not start: ${fs.readFileSync(path.join(dir, 'registry.log'), 'utf8')}`);
}

function stopProcess(pid: number, dir?: string): void {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    // already gone
  }
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}

/** What the registry itself says about a tag, bypassing the client under test. */
export function registryManifestStatus(host: string, repository: string, reference: string): number {
  const r = spawnSync(
    'curl',
    ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-H', 'Accept: application/vnd.oci.image.manifest.v1+json', `http://${host}/v2/${repository}/manifests/${reference}`],
    { encoding: 'utf8' },
  );
  return Number(r.stdout);
}
