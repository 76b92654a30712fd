/**
 * A small round-robin HTTP client over several registry instances, standing
 * in for a load balancer during a rolling update: one keep-alive agent per
 * instance, requests spread in turn. A connection that is refused (the
 * instance stopped listening) takes that instance out of the rotation for a
 * moment and the request is retried on the next one, as a balancer removing
 * an unready endpoint would. Anything else (a reset or cut answer on a
 * connection the instance had accepted, a timeout, an unexpected status or
 * body) is a failed request.
 */
import http from 'node:http';

export interface Outcome {
  path: string;
  ok: boolean;
  /** the instance that answered (or failed); undefined when every instance refused */
  endpoint?: string;
  status?: number;
  error?: string;
  /** refused connections retried elsewhere before this outcome */
  retries: number;
  start: number;
  end: number;
}

interface Endpoint {
  url: string;
  host: string;
  port: number;
  agent: http.Agent;
  downUntil: number;
}

export interface RoundRobinOptions {
  /** one request's limit, from sending to the last body byte (default 10 s) */
  timeoutMs?: number;
  /** how long a refusing instance stays out of the rotation (default 500 ms) */
  downForMs?: number;
  /** extra check of an answer; a string is the reason it is wrong */
  check?: (path: string, status: number, body: Buffer, headers: http.IncomingHttpHeaders) => string | undefined;
}

export class RoundRobinClient {
  private readonly endpoints: Endpoint[];
  private turn = 0;

  constructor(urls: string[], private readonly opts: RoundRobinOptions = {}) {
    this.endpoints = urls.map((url) => {
      const u = new URL(url);
      return { url, host: u.hostname, port: Number(u.port), agent: new http.Agent({ keepAlive: true, maxSockets: 64 }), downUntil: 0 };
    });
  }

  /** The next instance in turn that is in the rotation and not tried yet for this request; a resting one if none is left. */
  private pick(tried: Set<Endpoint>): Endpoint | undefined {
    const now = Date.now();
    const n = this.endpoints.length;
    const start = this.turn++ % n;
    let resting: Endpoint | undefined;
    for (let i = 0; i < n; i++) {
      const ep = this.endpoints[(start + i) % n];
      if (tried.has(ep)) continue;
      if (ep.downUntil <= now) return ep;
      resting ??= ep;
    }
    return resting;
  }

  async get(path: string): Promise<Outcome> {
    const start = Date.now();
    const tried = new Set<Endpoint>();
    let retries = 0;
    for (let ep = this.pick(tried); ep; ep = this.pick(tried)) {
      tried.add(ep);
      try {
        const r = await this.once(ep, path);
        const problem = r.status !== 200 ? `status ${r.status}` : this.opts.check?.(path, r.status, r.body, r.headers);
        return { path, ok: problem === undefined, endpoint: ep.url, status: r.status, error: problem, retries, start, end: Date.now() };
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ECONNREFUSED') {
          ep.downUntil = Date.now() + (this.opts.downForMs ?? 500);
          retries++;
          continue;
        }
        const reused = (err as { reusedSocket?: boolean }).reusedSocket ? ' (on a reused keep-alive connection)' : ' (on a new connection)';
        return { path, ok: false, endpoint: ep.url, error: `${code ?? ''} ${(err as Error).message}${reused}`.trim(), retries, start, end: Date.now() };
      }
    }
    return { path, ok: false, error: 'every instance refused the connection', retries, start, end: Date.now() };
  }

  private once(ep: Endpoint, path: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(Object.assign(err, { reusedSocket: req.reusedSocket }));
      };
      const req = http.get({ host: ep.host, port: ep.port, path, agent: ep.agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          const body = Buffer.concat(chunks);
          const declared = res.headers['content-length'];
          if (declared !== undefined && Number(declared) !== body.length) reject(new Error(`body of ${body.length} bytes, Content-Length ${declared}`));
          else resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        });
        res.on('aborted', () => fail(new Error('answer cut short')));
        res.on('error', fail);
        res.on('close', () => { if (!res.complete) fail(new Error('connection closed before the answer was complete')); });
      });
      const timer = setTimeout(() => { const err = new Error(`no complete answer within ${this.opts.timeoutMs ?? 10_000} ms`); req.destroy(err); fail(err); }, this.opts.timeoutMs ?? 10_000);
      req.on('error', fail);
    });
  }

  close(): void {
    for (const ep of this.endpoints) ep.agent.destroy();
  }
}

export interface LoadReport {
  outcomes: Outcome[];
  failed: Outcome[];
  /** answered requests by instance URL */
  servedBy: Map<string, number>;
  retries: number;
}

/**
 * `concurrency` loops, each sending the paths in turn (one request at a time)
 * through the client until `durationMs` has passed.
 */
export async function runLoad(client: RoundRobinClient, paths: string[], opts: { concurrency: number; durationMs: number }): Promise<LoadReport> {
  const outcomes: Outcome[] = [];
  const end = Date.now() + opts.durationMs;
  const loop = async (offset: number) => {
    for (let i = offset; Date.now() < end; i++) outcomes.push(await client.get(paths[i % paths.length]));
  };
  await Promise.all(Array.from({ length: opts.concurrency }, (_, k) => loop(k * 7)));
  const servedBy = new Map<string, number>();
  for (const o of outcomes) if (o.ok && o.endpoint) servedBy.set(o.endpoint, (servedBy.get(o.endpoint) ?? 0) + 1);
  return { outcomes, failed: outcomes.filter((o) => !o.ok), servedBy, retries: outcomes.reduce((n, o) => n + o.retries, 0) };
}
