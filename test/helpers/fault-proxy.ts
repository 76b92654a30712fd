/**
 * An HTTP proxy on 127.0.0.1 in front of a real registry that injects faults
 * the way networks and overloaded registries make them: an error status (500,
 * 429 with Retry-After) for the first N matching requests, a connection
 * dropped after some bytes of a request or of an answer, a stall (the proxy
 * stops reading and never answers). Everything else passes through with its
 * Host header, so the registry's upload Locations point back at the proxy.
 */
import http from 'node:http';
import net from 'node:net';

export type Matcher = (method: string, url: string) => boolean;

export type Fault =
  | { kind: 'status'; status: number; times: number; retryAfter?: string; match?: Matcher }
  /** drop the connection after `afterBytes` of the request body (an upload) or of the answer body (a download) */
  | { kind: 'drop'; side: 'request' | 'response'; afterBytes: number; times: number; match?: Matcher }
  /** read `afterBytes` of the request body, then neither read nor answer again */
  | { kind: 'stall'; afterBytes?: number; times: number; match?: Matcher };

export interface FaultProxy {
  host: string;
  /** every request seen, as "METHOD path" */
  requests: string[];
  /** faults applied since the last setFaults, by kind */
  fired: string[];
  setFaults(faults: Fault[]): void;
  close(): Promise<void>;
}

export const isBlobUpload: Matcher = (m, u) => m === 'PUT' && u.includes('/blobs/uploads/');
export const isBlobDownload: Matcher = (m, u) => m === 'GET' && /\/blobs\/sha256:/.test(u);
export const isManifestPut: Matcher = (m, u) => m === 'PUT' && u.includes('/manifests/');

export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const [upHost, upPort] = upstream.split(':');
  let faults: Fault[] = [];
  const requests: string[] = [];
  const fired: string[] = [];
  const sockets = new Set<net.Socket>();

  const forward = (req: http.IncomingMessage, res: http.ServerResponse, fault?: Fault) => {
    const up = http.request({ host: upHost, port: Number(upPort), method: req.method, path: req.url, headers: req.headers, agent: false }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      if (fault?.kind === 'drop' && fault.side === 'response') {
        let n = 0;
        ur.on('data', (c: Buffer) => {
          if (n + c.length > fault.afterBytes) {
            res.write(c.subarray(0, Math.max(0, fault.afterBytes - n)));
            res.socket?.destroy();
            ur.destroy();
            return;
          }
          n += c.length;
          res.write(c);
        });
        ur.on('end', () => res.end());
      } else ur.pipe(res);
    });
    up.on('error', () => res.socket?.destroy());
    if (fault?.kind === 'drop' && fault.side === 'request') {
      let n = 0;
      req.on('data', (c: Buffer) => {
        n += c.length;
        if (n > fault.afterBytes) {
          req.socket.destroy();
          up.destroy();
        } else up.write(c);
      });
      req.on('end', () => up.end());
    } else req.pipe(up);
  };

  const server = http.createServer((req, res) => {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    requests.push(`${method} ${url}`);
    const fault = faults.find((f) => f.times > 0 && (!f.match || f.match(method, url)));
    if (!fault) return forward(req, res);
    fault.times--;
    fired.push(fault.kind === 'status' ? String(fault.status) : fault.kind);
    switch (fault.kind) {
      case 'status':
        req.resume();
        req.on('end', () => {
          res.writeHead(fault.status, { 'content-type': 'application/json', ...(fault.retryAfter ? { 'retry-after': fault.retryAfter } : {}) });
          res.end(JSON.stringify({ errors: [{ code: fault.status === 429 ? 'TOOMANYREQUESTS' : 'UNKNOWN', message: `injected ${fault.status}` }] }));
        });
        return;
      case 'drop':
        return forward(req, res, fault);
      case 'stall': {
        let n = 0;
        const limit = fault.afterBytes ?? 0;
        const onData = (c: Buffer) => {
          n += c.length;
          if (n >= limit) {
            req.off('data', onData);
            req.pause();
          }
        };
        if (limit > 0) req.on('data', onData);
        else req.pause();
        return;
      }
    }
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    requests,
    fired,
    setFaults(f) {
      faults = f.map((x) => ({ ...x }));
      fired.length = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
