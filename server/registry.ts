import http from 'node:http';
import https from 'node:https';
import fs from 'node:fs';
import os from 'node:os';
import type { RegistryMetrics } from './metrics.js';
import path from 'node:path';
import { ZipCache } from './packages/archive.js';
import type { AddressInfo } from 'node:net';
import { loadPackageIndex, type IndexLoadResult, type PackageIndex } from './packages/index.js';
import type { PackageLoadError } from './packages/package.js';
import { formatProblem } from './packages/validate.js';
import type { RegistryConfig } from './config.js';
import { createApp } from './app.js';
import { SERVICE_VERSION, type RegistryContext } from './context.js';
import type { Logger } from './logger.js';
import type { Upstream } from './proxy.js';
import { ResponseCache, writeAnswer } from './http/response-cache.js';

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
      if (p.kind === 'zip' && !p.signatureFile) {
        failures.push(Object.assign(new Error(`${p.source.location}: signature ${p.source.location}.sig is missing`), {
          location: p.source.location,
          problems: [{ file: `${p.source.location}.sig`, message: 'signature is missing (or start with --require-package-signatures=false)' }],
        }) as PackageLoadError);
      }
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
    zips: new ZipCache(fs.mkdtempSync(path.join(os.tmpdir(), 'epr-zips-'))),
  };
  return { index, failures, ctx, notes };
}

export function describeFailures(failures: PackageLoadError[]): string[] {
  return failures.flatMap((f) => f.problems.map(formatProblem));
}

/** One access-log line per request, with ECS field names. */
function accessLogger(logger: Logger): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  if (!logger.enabled('info')) return () => undefined;
  return (req, res) => {
    const start = process.hrtime.bigint();
    res.on('finish', () => {
      logger.info('access', {
        'http.request.method': req.method,
        'url.original': req.url,
        'http.response.status_code': res.statusCode,
        'event.duration': Number(process.hrtime.bigint() - start),
        'user_agent.original': req.headers['user-agent'],
        'source.address': req.socket.remoteAddress,
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
}

export async function listen(ctx: RegistryContext, address: string, logger: Logger, opts: ListenOptions = {}): Promise<RunningServer> {
  const app = createApp(ctx, logger);
  const log = accessLogger(logger);
  // Ready answers are written before the router sees the request: most of
  // Fleet's traffic is the same few URLs, and the router costs more than the answer.
  const handler: http.RequestListener = (req, res) => {
    opts.metrics?.observe(req, res);
    log(req, res);
    const ready = ctx.answers && (req.method === 'GET' || req.method === 'HEAD') ? ctx.answers.get(req.url ?? '') : undefined;
    if (ready) writeAnswer(req, res, ready);
    else app(req, res);
  };
  const server: http.Server = opts.tls
    ? https.createServer({ maxHeaderSize: 16 * 1024, cert: opts.tls.cert, key: opts.tls.key, minVersion: opts.tls.minVersion }, handler)
    : http.createServer({ maxHeaderSize: 16 * 1024 }, handler);
  server.keepAliveTimeout = 65_000;
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
      const force = setTimeout(() => server.closeAllConnections(), graceMs);
      force.unref();
      server.close(() => { clearTimeout(force); ctx.zips?.clear(); resolve(); });
      // keep-alive connections with no request in flight would hold close() open
      server.closeIdleConnections();
      const idle = setInterval(() => server.closeIdleConnections(), 100);
      idle.unref();
      server.once('close', () => clearInterval(idle));
    }),
  };
}
