/**
 * Starting the registry for tests: in-process on 127.0.0.1 port 0, or as a
 * child process (`node dist/server/main.js`) for flags, env, exit codes and
 * signals. Also a raw HTTP client that sends paths exactly as given.
 */
import http from 'node:http';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { listen, loadRegistry, describeFailures, type LoadedRegistry, type RunningServer } from '../../server/registry.js';
import { silentLogger } from '../../server/logger.js';
import { DIST_ROOT, type CacheTimes } from '../../server/config.js';

/** dist/test/helpers -> project root */
export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const MAIN_JS = path.join(DIST_ROOT, 'server', 'main.js');

export interface TestRegistry {
  url: string;
  running: RunningServer;
  loaded: LoadedRegistry;
  problems: string[];
  close(): Promise<void>;
}

export interface StartOptions {
  validate?: boolean;
  requireSignatures?: boolean;
  allowUnknownQueryParameters?: boolean;
  cacheTime?: Partial<CacheTimes>;
  serviceName?: string;
}

export const DEFAULT_TEST_CACHE: CacheTimes = { index: 10, search: 600, categories: 600, catchAll: 600 };

export async function startRegistry(packagePaths: string[], opts: StartOptions = {}): Promise<TestRegistry> {
  const loaded = await loadRegistry({
    config: { packagePaths, cacheTime: { ...DEFAULT_TEST_CACHE, ...opts.cacheTime }, source: 'test' },
    validate: opts.validate ?? true,
    requireSignatures: opts.requireSignatures ?? true,
    allowUnknownQueryParameters: opts.allowUnknownQueryParameters ?? true,
    serviceName: opts.serviceName,
  });
  const running = await listen(loaded.ctx, '127.0.0.1:0', silentLogger);
  return { url: running.url, running, loaded, problems: describeFailures(loaded.failures), close: () => running.close(1000) };
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  text: string;
}

/** One request with the path sent byte for byte (fetch would normalise `..` and `%2e`). */
export function rawRequest(base: string, rawPath: string, opts: { method?: string; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<RawResponse> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: Number(u.port), method: opts.method ?? 'GET', path: rawPath, headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString('utf8') });
      });
      res.on('error', reject);
    });
    req.setTimeout(opts.timeoutMs ?? 10_000, () => req.destroy(new Error(`request ${rawPath} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

export async function get(base: string, p: string, headers?: Record<string, string>): Promise<RawResponse> {
  return rawRequest(base, p, { headers });
}

export async function getJson<T = unknown>(base: string, p: string): Promise<T> {
  const r = await rawRequest(base, p);
  if (r.status !== 200) throw new Error(`GET ${p}: ${r.status} ${r.text}`);
  return JSON.parse(r.text) as T;
}

// ---------------------------------------------------------------------------
// Child processes

/** The environment without any EPR_* variable of the machine running the tests. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('EPR_') && k !== 'ELASTIC_APM_SERVICE_NAME') env[k] = v;
  return { ...env, ...extra };
}

export interface RunResult { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

/** Runs the server to completion (for --help, --dry-run, failing starts). */
export function runServer(args: string[], opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN_JS, ...args], { env: cleanEnv(opts.env), cwd: opts.cwd ?? PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`server did not exit within ${opts.timeoutMs ?? 15000} ms; stderr: ${stderr}`)); }, opts.timeoutMs ?? 15_000);
    child.on('error', (err) => { clearTimeout(timer); reject(err); });
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout, stderr }); });
  });
}

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code once the process has ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Kills the process (SIGKILL) if it still runs. */
  kill(): void;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

/** Starts the server and waits for its "ready" log line, which carries the URL. */
export function spawnServer(args: string[], opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {}): Promise<ServerProcess> {
  const child = spawn(process.execPath, [MAIN_JS, ...args], { env: cleanEnv(opts.env), cwd: opts.cwd ?? PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  const running = () => child.exitCode === null && child.signalCode === null;
  const kill = () => { if (running()) child.kill('SIGKILL'); };
  const stop = async (graceMs = 3000) => {
    if (!running()) return;
    child.kill('SIGTERM');
    const timer = setTimeout(kill, graceMs);
    await exited;
    clearTimeout(timer);
  };
  return new Promise((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => { if (done) return; done = true; kill(); reject(new Error(`server not ready within ${opts.timeoutMs ?? 15000} ms; stderr: ${stderr}`)); }, opts.timeoutMs ?? 15_000);
    const check = () => {
      if (done) return;
      for (const line of stderr.split('\n')) {
        if (!line.startsWith('{')) continue;
        let rec: Record<string, unknown>;
        try { rec = JSON.parse(line) as Record<string, unknown>; } catch { continue; }
        if (typeof rec['server.address'] === 'string') {
          done = true;
          clearTimeout(timer);
          resolve({ child, url: rec['server.address'], stdout: () => stdout, stderr: () => stderr, exited, kill, stop });
          return;
        }
      }
    };
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); check(); });
    exited.then(({ code }) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before it was ready; stderr: ${stderr}`));
    });
  });
}

/**
 * Starts every task now, at most `concurrency` at a time, and returns their
 * promises by key: process runs are slow to start, so a suite kicks them all
 * off in before() and each test awaits its own.
 */
export function startAll<T>(tasks: Record<string, () => Promise<T>>, concurrency = 3): Record<string, Promise<T>> {
  const queue = Object.entries(tasks);
  const out: Record<string, Promise<T>> = {};
  const starters: Array<() => void> = [];
  for (const [key, task] of queue) {
    out[key] = new Promise<void>((resolve) => starters.push(resolve)).then(task);
    // a rejection is seen by the test that awaits it; keep it from being "unhandled" meanwhile
    out[key].catch(() => undefined);
  }
  const next = () => starters.shift()?.();
  for (const p of Object.values(out)) void p.then(next, next);
  for (let i = 0; i < concurrency; i++) next();
  return out;
}
