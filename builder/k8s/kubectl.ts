import { spawn } from 'node:child_process';

/**
 * The machine's `kubectl`, with the current KUBECONFIG and context (or the
 * --context given), run without a shell and always with a time limit. Every
 * failure is turned into one of the errors below, each a single line a
 * release engineer can act on.
 */

export class KubectlError extends Error {}
export class KubectlMissingError extends KubectlError {}
export class ClusterUnreachableError extends KubectlError {}
export class NotFoundError extends KubectlError {}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface KubectlOptions {
  context?: string;
  /** the kubectl program (tests point it elsewhere) */
  bin?: string;
  env?: NodeJS.ProcessEnv;
  /** default time limit of one call, ms */
  timeoutMs?: number;
}

export const INSTALL_HINT = 'install it (Debian/Ubuntu: apt-get install kubernetes-client) or put it on PATH';

/** Phrases kubectl uses when it never reached an API server. */
const UNREACHABLE = [
  /Unable to connect to the server/i,
  /The connection to the server .* was refused/i,
  /connection refused/i,
  /no such host/i,
  /i\/o timeout/i,
  /dial tcp/i,
  /context deadline exceeded/i,
  /Client\.Timeout exceeded/i,
  /no configuration has been provided/i,
  /couldn't get current server API group list/i,
  /context "[^"]*" does not exist/i,
  /Error in configuration/i,
  /server has asked for the client to provide credentials/i,
  /certificate/i,
];

export function looksUnreachable(stderr: string): boolean {
  return UNREACHABLE.some((r) => r.test(stderr));
}

export function looksNotFound(stderr: string): boolean {
  return /\(NotFound\)|not found/i.test(stderr);
}

/** The first meaningful line of kubectl's complaint, without the "error: " prefix. */
export function firstLine(stderr: string): string {
  // klog lines (E1123 12:00:00.000 ... memcache.go ...) come before kubectl's own message
  const line = stderr.split('\n').map((l) => l.trim()).find((l) => l !== '' && !/^[IWEF]\d{4} /.test(l)) ?? '';
  return line.replace(/^error:\s*/i, '').replace(/^Error from server( \(\w+\))?:\s*/i, '');
}

export class Kubectl {
  readonly bin: string;
  constructor(readonly opts: KubectlOptions = {}) {
    this.bin = opts.bin ?? 'kubectl';
  }

  /** Where the calls go, for messages: `context local` or `the current context`. */
  get where(): string {
    return this.opts.context ? `context ${this.opts.context}` : 'the current context';
  }

  /**
   * Runs kubectl with `args`; resolves with the exit code whatever it is.
   * Rejects only when kubectl cannot be started or runs past the limit.
   * `onLine` receives stdout lines as they come (progress).
   */
  run(args: string[], o: { timeoutMs?: number; input?: string; onLine?: (line: string) => void } = {}): Promise<KubectlResult> {
    const timeoutMs = o.timeoutMs ?? this.opts.timeoutMs ?? 30_000;
    const full = [...(this.opts.context ? ['--context', this.opts.context] : []), ...args];
    return new Promise((resolve, reject) => {
      const child = spawn(this.bin, full, { env: this.opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      let pending = '';
      let timedOut = false;
      const timer = setTimeout(() => { timedOut = true; child.kill('SIGTERM'); setTimeout(() => child.kill('SIGKILL'), 2000).unref(); }, timeoutMs);
      child.stdout.setEncoding('utf8').on('data', (s: string) => {
        stdout += s;
        if (o.onLine) {
          pending += s;
          const lines = pending.split('\n');
          pending = lines.pop() ?? '';
          for (const l of lines) if (l.trim()) o.onLine(l);
        }
      });
      child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
      child.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (err.code === 'ENOENT') reject(new KubectlMissingError(`kubectl not found (${this.bin}): ${INSTALL_HINT}`));
        else reject(new KubectlError(`kubectl could not be started: ${err.message}`));
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        if (o.onLine && pending.trim()) o.onLine(pending);
        if (timedOut) reject(new KubectlError(`kubectl ${args.slice(0, 3).join(' ')} did not finish within ${Math.round(timeoutMs / 1000)}s`));
        else resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
      });
      child.stdin.on('error', () => { /* kubectl may exit before reading its input */ });
      child.stdin.end(o.input ?? '');
    });
  }

  /**
   * Runs kubectl and insists on success: an unreachable cluster becomes
   * ClusterUnreachableError, a missing object NotFoundError, anything else
   * KubectlError with kubectl's own first line.
   */
  async ok(args: string[], o: { timeoutMs?: number; input?: string; what?: string } = {}): Promise<string> {
    const r = await this.run(args, o);
    if (r.code === 0) return r.stdout;
    throw this.classify(r.stderr, o.what ?? `kubectl ${args.slice(0, 2).join(' ')}`);
  }

  classify(stderr: string, what: string): KubectlError {
    if (looksUnreachable(stderr)) return new ClusterUnreachableError(`no cluster reachable through ${this.where}: ${firstLine(stderr)}`);
    if (looksNotFound(stderr)) return new NotFoundError(`${what}: ${firstLine(stderr)}`);
    return new KubectlError(`${what} failed: ${firstLine(stderr) || 'no message from kubectl'}`);
  }

  async json<T>(args: string[], o: { timeoutMs?: number; what?: string } = {}): Promise<T> {
    const out = await this.ok([...args, '-o', 'json'], o);
    return JSON.parse(out) as T;
  }
}
