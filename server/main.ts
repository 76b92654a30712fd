#!/usr/bin/env node
import { parseDuration, parseFlags, usage, UsageError, envName } from './flags.js';
import { ConfigError, loadConfig } from './config.js';
import { createLogger, isLogLevel, type Logger } from './logger.js';
import { describeFailures, listen, loadRegistry, parseAddress, type ListenOptions } from './registry.js';
import type { RegistryMetrics } from './metrics.js';
import { listenProfiling } from './profiling.js';
import fs from 'node:fs';
import { SERVICE_VERSION } from './context.js';
import { Upstream } from './proxy.js';

/** The logger once made: everything written to stderr from then on goes through it, in order. */
let openLogger: Logger | undefined;

/** How long the process waits at exit for a reader of its log that does not read. */
const LOG_FLUSH_MS = 30_000;

/** Flags + EPR_* environment + config.yml -> index -> listen; SIGTERM drains and exits 0. */
async function main(argv: string[]): Promise<number> {
  let flags;
  try {
    flags = parseFlags(argv, process.env);
  } catch (err) {
    if (err instanceof UsageError) { process.stderr.write(`error: ${err.message}\n`); return 2; }
    throw err;
  }
  const v = flags.values;
  if (v.help) { process.stdout.write(usage()); return 0; }
  if (v.version) { process.stdout.write(`package-registry ${SERVICE_VERSION}\n`); return 0; }
  const level = String(v['log-level']);
  const type = String(v['log-type']);
  if (!isLogLevel(level)) { process.stderr.write(`error: --log-level must be debug, info, warn or error, got "${level}"\n`); return 2; }
  if (type !== 'ecs' && type !== 'dev') { process.stderr.write(`error: --log-type must be ecs or dev, got "${type}"\n`); return 2; }
  const logger = createLogger(level, type);
  openLogger = logger;

  let config;
  try {
    config = loadConfig(String(v.config), flags.explicit.has('config'));
  } catch (err) {
    if (err instanceof ConfigError) { logger.print(`error: invalid configuration ${err.message}\n`); return 2; }
    throw err;
  }
  const validate = !v['disable-package-validation'];
  logger.info('configuration', {
    'config.source': config.source,
    'config.package_paths': config.packagePaths,
    'config.cache_time': config.cacheTime,
    'config.address': v.address,
    'config.validation': validate,
    'config.require_package_signatures': v['require-package-signatures'],
    'config.allow_unknown_query_parameters': v['allow-unknown-query-parameters'],
    'config.proxy_to': v['feature-proxy-mode'] ? v['proxy-to'] : undefined,
    'config.proxy_timeout': v['feature-proxy-mode'] ? v['proxy-timeout'] : undefined,
  });

  let tls;
  try {
    tls = tlsSettings(String(v['tls-cert']), String(v['tls-key']), String(v['tls-min-version']));
  } catch (err) {
    logger.print(`error: ${(err as Error).message}\n`);
    return 2;
  }
  const proxyTimeoutMs = parseDuration(String(v['proxy-timeout']));
  if (proxyTimeoutMs === undefined) {
    logger.print(`error: --proxy-timeout must be a duration like 10s, 2s or 500ms, got "${v['proxy-timeout']}"\n`);
    return 2;
  }
  let upstream: Upstream | undefined;
  if (v['feature-proxy-mode']) {
    try {
      upstream = new Upstream({ baseUrl: String(v['proxy-to']), allowInsecure: Boolean(v['proxy-allow-insecure']), timeoutMs: proxyTimeoutMs, logger });
    } catch (err) {
      logger.print(`error: ${(err as Error).message}\n`);
      return 2;
    }
  }
  const started = Date.now();
  const loaded = await loadRegistry({
    config,
    validate,
    requireSignatures: Boolean(v['require-package-signatures']),
    allowUnknownQueryParameters: Boolean(v['allow-unknown-query-parameters']),
    serviceName: process.env.ELASTIC_APM_SERVICE_NAME || undefined,
    upstream,
    // --dry-run checks the packages themselves, not a baked summary of them
    useBakedIndex: !v['dry-run'],
  });
  for (const n of loaded.notes) {
    if (n.baked) logger.info('package path read from its baked index', { 'file.path': n.path });
    else if (n.reason !== 'no baked index') logger.warn(`package path scanned: ${n.reason}`, { 'file.path': n.path });
  }
  const problems = describeFailures(loaded.failures);
  if (v['dry-run']) {
    if (problems.length > 0) {
      logger.print(`dry run: ${loaded.failures.length} package(s) with problems:\n${problems.map((p) => `  - ${p}\n`).join('')}`);
      return 1;
    }
    process.stdout.write(`dry run: ${loaded.index.size} package versions of ${loaded.index.names().length} packages are valid (${config.packagePaths.length} package paths)\n`);
    return 0;
  }
  if (problems.length > 0) {
    if (validate) {
      logger.print(`error: ${loaded.failures.length} package(s) failed to load; not starting:\n${problems.map((p) => `  - ${p}\n`).join('')}`
        + `(fix them, or start with --disable-package-validation / ${envName('disable-package-validation')}=true to skip what cannot be read)\n`);
      return 1;
    }
    for (const p of problems) logger.warn('package skipped', { 'error.message': p });
  }

  // prom-client is loaded only when metrics are asked for: it is a tenth of a start's module loading
  const metrics = v['metrics-address'] ? new (await import('./metrics.js')).RegistryMetrics(SERVICE_VERSION, loaded.index.size) : undefined;
  let running;
  let metricsServer: Awaited<ReturnType<RegistryMetrics['listen']>> | undefined;
  try {
    running = await listen(loaded.ctx, String(v.address), logger, { tls, metrics });
  } catch (err) {
    logger.print(`error: cannot listen on ${v.address}: ${(err as Error).message}\n`);
    return 1;
  }
  let profServer: Awaited<ReturnType<typeof listenProfiling>> | undefined;
  if (v.httpprof) {
    try {
      profServer = await listenProfiling(parseAddress(String(v.httpprof)));
      logger.info(`profiling on ${profServer.url}/debug/pprof/profile and /debug/pprof/heap`);
    } catch (err) {
      logger.print(`error: cannot serve profiling on ${v.httpprof}: ${(err as Error).message}\n`);
      await running.close(0);
      return 1;
    }
  }
  if (metrics) {
    try {
      metricsServer = await metrics.listen(parseAddress(String(v['metrics-address'])));
      logger.info(`metrics on ${metricsServer.url}/metrics`, { 'metrics.address': metricsServer.url });
    } catch (err) {
      logger.print(`error: cannot serve metrics on ${v['metrics-address']}: ${(err as Error).message}\n`);
      await running.close(0);
      return 1;
    }
  }
  logger.info(`package registry ready on ${running.url} (${loaded.index.size} package versions, indexed in ${Date.now() - started} ms)`, {
    'server.address': running.url, 'package.count': loaded.index.size,
  });
  const shown = /^(localhost|[\w.-]+):\d+$/.test(String(v.address)) && !String(v.address).startsWith('0.0.0.0') ? `${tls ? 'https' : 'http'}://${v.address}` : running.url;
  process.stdout.write(`package-registry: serving ${loaded.index.size} package versions of ${loaded.index.names().length} packages from ${config.packagePaths.length} package path(s) on ${shown} (Ctrl-C to stop)\n`);

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info('shutting down: finishing in-flight requests', { 'process.signal': signal });
      metricsServer?.server.close();
      profServer?.server.close();
      running.close().then(() => { logger.info('stopped'); resolve(0); });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}

const TLS_VERSIONS = { '1.0': 'TLSv1', '1.1': 'TLSv1.1', '1.2': 'TLSv1.2', '1.3': 'TLSv1.3' } as const;

/** Both files or neither; each readable; a known minimum version. */
function tlsSettings(cert: string, key: string, minVersion: string): ListenOptions['tls'] {
  const min = TLS_VERSIONS[minVersion as keyof typeof TLS_VERSIONS];
  if (!min) throw new Error(`--tls-min-version must be 1.0, 1.1, 1.2 or 1.3, got "${minVersion}"`);
  if (!cert && !key) return undefined;
  if (!cert || !key) throw new Error(`TLS needs both --tls-cert and --tls-key (${envName('tls-cert')}, ${envName('tls-key')}); only ${cert ? '--tls-cert' : '--tls-key'} was given`);
  const read = (file: string, flag: string) => {
    try { return fs.readFileSync(file); } catch (err) { throw new Error(`cannot read ${flag} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`); }
  };
  return { cert: read(cert, '--tls-cert'), key: read(key, '--tls-key'), minVersion: min };
}

main(process.argv.slice(2)).then(exit, (err: Error) => {
  if (openLogger) openLogger.print(`error: ${err.message}\n`);
  else process.stderr.write(`error: ${err.message}\n`);
  return exit(1);
});

/**
 * Every log line is written before the process ends; only a reader that has
 * not taken them within LOG_FLUSH_MS makes it give up on the rest (a write
 * stuck on that pipe would otherwise keep the process alive for ever).
 */
async function exit(code: number): Promise<void> {
  process.exitCode = code;
  if (openLogger && !(await openLogger.flush(LOG_FLUSH_MS))) process.exit(code);
}
