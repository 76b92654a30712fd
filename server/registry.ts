import http from 'node:http';
import https from 'node:https';
import type { RegistryMetrics } from './metrics.js';
import { ZipCache } from './packages/archive.js';
import net, { type AddressInfo } from 'node:net';
import { loadPackageIndex, type IndexLoadResult, type PackageIndex } from './packages/index.js';
import { PackageLoadError, signatureProblem } from './packages/package.js';
import { formatProblem } from './packages/validate.js';
import type { RegistryConfig } from './config.js';
import { createApp } from './app.js';
import { SERVICE_VERSION, type RegistryContext } from './context.js';
import type { AccessRecord, Logger } from './logger.js';
import type { Upstream } from './proxy.js';
import { ResponseCache, writeAnswer, writeFileAnswer } from './http/response-cache.js';
import { fastConnection } from './http/fast-path.js';

export interface RegistryOptions {
  config: RegistryConfig;
  validate: boolean;
  requireSignatures: boolean;
  allowUnknownQueryParameters: boolean;
  serviceName?: string;
  upstream?: Upstream;
  useBakedIndex?: boolean;
}

export interface LoadedRegistry {
  index: PackageIndex;
  failures: PackageLoadError[];
  notes: IndexLoadResult['notes'];
  ctx: RegistryContext;
}

/** Indexes every package path; with signatures required, a zip without its .sig is a failure. */
export async function loadRegistry(opts: RegistryOptions): Promise<LoadedRegistry> {
  const { index, failures, notes } = await loadPackageIndex(opts.config.packagePaths, { validate: opts.validate, useBakedIndex: opts.useBakedIndex });
  if (opts.requireSignatures) {
    for (const p of index.all) {
      const problem = signatureProblem(p);
      if (problem) failures.push(new PackageLoadError(p.source.location, [{ ...problem, message: `${problem.message} (or start with --require-package-signatures=false)` }]));
    }
  }
  const ctx: RegistryContext = {
    index,
    cacheTime: opts.config.cacheTime,
    allowUnknownQueryParameters: opts.allowUnknownQueryParameters,
    serviceName: opts.serviceName ?? 'package-registry',
    serviceVersion: SERVICE_VERSION,
    upstream: opts.upstream,
    answers: opts.upstream ? undefined : new ResponseCache(),
    zips: new ZipCache(),
  };
  return { index, failures, ctx, notes };
}

export function describeFailures(failures: PackageLoadError[]): string[] {
  return failures.flatMap((f) => f.problems.map(formatProblem));
}

/** One access-log line per request, with ECS field names, once the answer is handed to the socket. */
function accessLogger(logger: Logger): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  if (!logger.enabled('info')) return () => undefined;
  return (req, res) => {
    const start = process.hrtime.bigint();
    res.on('finish', () => {
      logger.access({
        method: req.method ?? '',
        url: req.url ?? '',
        status: res.statusCode,
        durationNs: Number(process.hrtime.bigint() - start),
        userAgent: req.headers['user-agent'],
        sourceAddress: req.socket.remoteAddress,
      });
    });
  };
}

export interface RunningServer {
  server: http.Server;
  url: string;
  /** Stops accepting, lets in-flight requests finish (up to `graceMs`), then closes. */
  close(graceMs?: number): Promise<void>;
}

export function parseAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  if (i < 0) throw new Error(`invalid address "${address}": expected host:port`);
  const host = address.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  const port = Number(address.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid address "${address}": bad port`);
  return { host: host === '' ? '0.0.0.0' : host, port };
}

export interface ListenOptions {
  tls?: { cert: Buffer; key: Buffer; minVersion: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3' };
  metrics?: RegistryMetrics;
  /** false: every request through Node's HTTP server (tests compare the two) */
  fastPath?: boolean;
}

export async function listen(ctx: RegistryContext, address: string, logger: Logger, opts: ListenOptions = {}): Promise<RunningServer> {
  const app = createApp(ctx, logger);
  const log = accessLogger(logger);
  const drain = new Drain();
  // Ready answers are written before the router sees the request: most of
  // Fleet's traffic is the same few URLs, and the router costs more than the answer.
  const handler: http.RequestListener = (req, res) => {
    drain.track(req, res);
    opts.metrics?.observe(req, res);
    log(req, res);
    const url = req.url ?? '';
    const ready = ctx.answers && (req.method === 'GET' || req.method === 'HEAD') ? ctx.answers.get(url) : undefined;
    if (ready) { writeAnswer(req, res, ready); return; }
    const file = ctx.answers && req.method === 'GET' ? ctx.answers.getFile(url) : undefined;
    if (file) { writeFileAnswer(res, file, () => { ctx.answers!.deleteFile(url); app(req, res); }); return; }
    app(req, res);
  };
  const server: http.Server = opts.tls
    ? https.createServer({ maxHeaderSize: 16 * 1024, cert: opts.tls.cert, key: opts.tls.key, minVersion: opts.tls.minVersion }, handler)
    : http.createServer({ maxHeaderSize: 16 * 1024 }, handler);
  server.keepAliveTimeout = 65_000;
  // Plain HTTP with ready answers: connections start on the fast path, which
  // hands them to Node's own connection listener at their first request it
  // does not answer itself. (With --metrics-address every request goes
  // through Node, where it is counted.)
  const nodeConnection = server.listeners('connection')[0] as ((socket: net.Socket) => void) | undefined;
  if (ctx.answers && !opts.tls && !opts.metrics && opts.fastPath !== false && nodeConnection?.name === 'connectionListener') {
    server.off('connection', nodeConnection);
    const answers = ctx.answers;
    const access = logger.enabled('info') ? (r: AccessRecord) => logger.access(r) : undefined;
    server.on('connection', (socket: net.Socket) => {
      drain.add(socket);
      fastConnection(socket, { answers, server, nodeConnection, open: () => !drain.draining, touched: (s) => drain.touch(s), access });
    });
  } else {
    // TLS: the socket requests come in on is the TLS one
    server.on(opts.tls ? 'secureConnection' : 'connection', (socket: net.Socket) => drain.add(socket));
  }
  const { host, port } = parseAddress(address);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(); });
  });
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    server,
    url: `${opts.tls ? 'https' : 'http'}://${shownHost}:${addr.port}`,
    close: (graceMs = 30_000) => new Promise<void>((resolve) => {
      const force = setTimeout(() => { server.closeAllConnections(); drain.destroyAll(); }, graceMs);
      force.unref();
      drain.start();
      // net's close, not http's: http's closes idle keep-alive connections at
      // once, cutting requests a client is sending on them at that moment
      net.Server.prototype.close.call(server, () => { clearTimeout(force); drain.stop(); ctx.zips?.clear(); resolve(); });
    }),
  };
}

/**
 * Draining keep-alive connections without cutting a request. Once draining,
 * every answer says `Connection: close`, so clients stop reusing their
 * connections; a connection with nothing in flight is closed only after it
 * has been quiet for a second: closing it at once (as http.Server#close does)
 * cuts the request a client may be sending on it at that very moment.
 */
class Drain {
  private static readonly QUIET_MS = 1000;
  private readonly sockets = new Map<net.Socket, { active: number; lastActive: number }>();
  private readonly open = new Set<http.ServerResponse>();
  draining = false;
  private sweeper: NodeJS.Timeout | undefined;

  add(socket: net.Socket): void {
    this.sockets.set(socket, { active: 0, lastActive: Date.now() });
    socket.once('close', () => this.sockets.delete(socket));
  }

  /** A request answered on the fast path: its connection is busy now. */
  touch(socket: net.Socket): void {
    const state = this.sockets.get(socket);
    if (state) state.lastActive = Date.now();
  }

  /** The grace is over: every connection goes, the fast path's too (Node's closeAllConnections knows only its own). */
  destroyAll(): void {
    for (const socket of this.sockets.keys()) socket.destroy();
  }

  track(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.draining) res.shouldKeepAlive = false;
    this.open.add(res);
    const state = this.sockets.get(req.socket);
    if (state) state.active++;
    res.once('close', () => {
      this.open.delete(res);
      if (state) { state.active--; state.lastActive = Date.now(); }
    });
  }

  start(): void {
    this.draining = true;
    const since = Date.now();
    for (const res of this.open) if (!res.headersSent) res.shouldKeepAlive = false;
    // quiet since the drain began, too: a client picks up a long-idle connection just as readily
    const sweep = () => {
      const now = Date.now();
      for (const [socket, state] of this.sockets) {
        if (state.active === 0 && now - Math.max(state.lastActive, since) >= Drain.QUIET_MS) socket.destroy();
      }
    };
    this.sweeper = setInterval(sweep, 50);
    this.sweeper.unref();
  }

  stop(): void {
    clearInterval(this.sweeper);
  }
}
