/**
 * Running the image builder's command line from integration tests, and the
 * small process helpers they share.
 */
import { spawn, spawnSync } from 'node:child_process';
import { PassThrough } from 'node:stream';
import type Docker from 'dockerode';
import { withTimeout } from '../../builder/image.js';
import net from 'node:net';
import path from 'node:path';
import { DIST_ROOT } from '../../server/config.js';
import { PROJECT_ROOT } from './server.js';

export const CLI = path.join(DIST_ROOT, 'builder', 'cli.js');

export interface CliResult { code: number | null; stdout: string; stderr: string; seconds: number }

/** `node dist/builder/cli.js <args>` from the project root, killed after `timeoutMs`. */
export function cli(args: string[], env: Record<string, string> = {}, timeoutMs = 600_000): Promise<CliResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr, seconds: (Date.now() - started) / 1000 }); });
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** A command that must succeed; its trimmed stdout. */
export function sh(cmd: string, args: string[], timeoutMs = 300_000): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr || r.error?.message}`);
  return r.stdout.trim();
}

/** Runs `cmd` in a running container; its exit code and its output (stdout and stderr together). */
export async function exec(docker: Docker, id: string, cmd: string[]): Promise<{ code: number; out: string }> {
  const e = await docker.getContainer(id).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await e.start({ hijack: true, stdin: false });
  const out = new PassThrough();
  let text = '';
  out.on('data', (c: Buffer) => { text += c.toString(); });
  docker.modem.demuxStream(stream, out, out);
  await withTimeout(new Promise<void>((resolve) => { stream.on('end', resolve); stream.on('close', resolve); }), 60_000, `exec ${cmd.join(' ')}`);
  const info = await e.inspect();
  return { code: info.ExitCode ?? -1, out: text };
}
