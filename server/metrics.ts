import http from 'node:http';
import type { AddressInfo } from 'node:net';
import client from 'prom-client';

/**
 * Prometheus metrics on their own address (off by default): requests by
 * route pattern (never the raw URL, which would explode the label space),
 * status and method; latency; requests in flight; indexed packages; and the
 * service version.
 */
const PATTERNS: Array<[RegExp, string]> = [
  [/^\/$/, '/'],
  [/^\/index\.json$/, '/index.json'],
  [/^\/health$/, '/health'],
  [/^\/favicon\.ico$/, '/favicon.ico'],
  [/^\/search$/, '/search'],
  [/^\/categories$/, '/categories'],
  [/^\/package\/[^/]+\/[^/]+\/$/, '/package/{name}/{version}/'],
  [/^\/package\/[^/]+\/[^/]+$/, '/package/{name}/{version}'],
  [/^\/package\/[^/]+\/[^/]+\/.+$/, '/package/{name}/{version}/{path}'],
  [/^\/epr\/[^/]+\/[^/]+\.zip$/, '/epr/{name}/{name}-{version}.zip'],
  [/^\/epr\/[^/]+\/[^/]+\.zip\.sig$/, '/epr/{name}/{name}-{version}.zip.sig'],
  [/^\/epr\/[^/]+\/[^/]+\.tar\.gz$/, '/epr/{name}/{name}-{version}.tar.gz'],
  [/^\/package\/[^/]+\.tar\.gz$/, '/package/{name}-{version}.tar.gz'],
  [/^\/package\/[^/]+$/, '/package/{name}-{version}'],
];

export function routePattern(url: string): string {
  const q = url.indexOf('?');
  const p = q < 0 ? url : url.slice(0, q);
  for (const [re, name] of PATTERNS) if (re.test(p)) return name;
  return 'unmatched';
}

export class RegistryMetrics {
  readonly registry = new client.Registry();
  private readonly requests = new client.Counter({ name: 'epr_http_requests_total', help: 'HTTP requests answered, by route pattern, status code and method', labelNames: ['path', 'code', 'method'] as const, registers: [this.registry] });
  private readonly duration = new client.Histogram({ name: 'epr_http_request_duration_seconds', help: 'Time to answer an HTTP request, by route pattern and method', labelNames: ['path', 'method'] as const, buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.registry] });
  private readonly inFlight = new client.Gauge({ name: 'epr_http_requests_in_flight', help: 'HTTP requests being answered now', registers: [this.registry] });
  readonly indexedPackages = new client.Gauge({ name: 'epr_number_indexed_packages', help: 'Package versions being served', registers: [this.registry] });
  private readonly info = new client.Gauge({ name: 'epr_service_info', help: 'The registry version, as a label', labelNames: ['version'] as const, registers: [this.registry] });

  constructor(version: string, packages: number) {
    this.info.set({ version }, 1);
    this.indexedPackages.set(packages);
    client.collectDefaultMetrics({ register: this.registry });
  }

  /** Counts a request from arrival to the end of its answer. */
  observe(req: http.IncomingMessage, res: http.ServerResponse): void {
    const end = this.duration.startTimer();
    this.inFlight.inc();
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      this.inFlight.dec();
      const path = routePattern(req.url ?? '');
      const method = req.method ?? 'GET';
      end({ path, method });
      this.requests.inc({ path, method, code: String(res.statusCode) });
    };
    res.once('finish', finish);
    res.once('close', finish);
  }

  /** The /metrics endpoint on its own address. */
  async listen(address: { host: string; port: number }): Promise<{ server: http.Server; url: string }> {
    const server = http.createServer(async (req, res) => {
      if (req.url !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
        res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
        res.end('404 page not found\n');
        return;
      }
      const body = await this.registry.metrics();
      res.writeHead(200, { 'Content-Type': this.registry.contentType });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(address.port, address.host, () => { server.off('error', reject); resolve(); });
    });
    const a = server.address() as AddressInfo;
    return { server, url: `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}` };
  }
}
