import http from 'node:http';
import inspector from 'node:inspector';
import type { AddressInfo } from 'node:net';

/**
 * --httpprof: what Go's net/http/pprof gives EPR operators, for Node. On its
 * own address (keep it on loopback): a CPU profile over N seconds, loadable
 * in Chrome DevTools or speedscope, and a heap snapshot.
 *   GET /debug/pprof/profile?seconds=10   -> .cpuprofile JSON
 *   GET /debug/pprof/heap                 -> .heapsnapshot
 */
function post<T>(session: inspector.Session, method: string, params?: object): Promise<T> {
  return new Promise((resolve, reject) => session.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res as T))));
}

async function cpuProfile(seconds: number): Promise<string> {
  const session = new inspector.Session();
  session.connect();
  try {
    await post(session, 'Profiler.enable');
    await post(session, 'Profiler.start');
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const { profile } = await post<{ profile: unknown }>(session, 'Profiler.stop');
    return JSON.stringify(profile);
  } finally {
    session.disconnect();
  }
}

async function heapSnapshot(res: http.ServerResponse): Promise<void> {
  const session = new inspector.Session();
  session.connect();
  session.on('HeapProfiler.addHeapSnapshotChunk', (m) => res.write((m.params as { chunk: string }).chunk));
  try {
    await post(session, 'HeapProfiler.takeHeapSnapshot', { reportProgress: false });
  } finally {
    session.disconnect();
  }
}

export async function listenProfiling(address: { host: string; port: number }): Promise<{ server: http.Server; url: string }> {
  let busy = false;
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method !== 'GET' || !['/debug/pprof/profile', '/debug/pprof/heap'].includes(url.pathname)) {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('404 page not found\n');
      return;
    }
    if (busy) {
      res.writeHead(409, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('a profile is being taken already\n');
      return;
    }
    busy = true;
    try {
      if (url.pathname === '/debug/pprof/heap') {
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Disposition': 'attachment; filename="registry.heapsnapshot"' });
        await heapSnapshot(res);
        res.end();
      } else {
        const seconds = Math.min(Math.max(Number(url.searchParams.get('seconds') ?? 10) || 10, 1), 300);
        const body = await cpuProfile(seconds);
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Disposition': 'attachment; filename="registry.cpuprofile"' });
        res.end(body);
      }
    } catch (err) {
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end(`profiling failed: ${(err as Error).message}\n`);
    } finally {
      busy = false;
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => { server.off('error', reject); resolve(); });
  });
  const a = server.address() as AddressInfo;
  return { server, url: `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}` };
}
