/**
 * A token service for docker-registry's `auth: token` (the Docker token
 * protocol): GET /token?service=...&scope=... with basic credentials, answered
 * with an ES256 JWT granting the scopes asked for to the one known user (or
 * POST with an OAuth2 refresh token). The
 * JWT carries the signing certificate in `x5c`; the registry trusts it
 * because the same self-signed certificate is its rootcertbundle.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

export interface TokenRequest {
  user?: string;
  service?: string;
  scopes: string[];
}

export interface TokenService {
  /** the realm to configure in the registry */
  realm: string;
  certPath: string;
  issuer: string;
  service: string;
  requests: TokenRequest[];
  close(): Promise<void>;
}

export interface TokenServiceOptions {
  dir: string;
  user: string;
  password: string;
  issuer?: string;
  service?: string;
  /** answer in `access_token` (as OAuth2 services do) instead of `token` */
  field?: 'token' | 'access_token';
  /** the refresh token a POST (OAuth2 grant_type=refresh_token) must carry */
  refreshToken?: string;
  /** grant pull to anonymous requests (else they get a token with no access) */
  anonymousPull?: boolean;
}

function b64url(b: Buffer | string): string {
  return Buffer.from(b).toString('base64url');
}

export async function startTokenService(o: TokenServiceOptions): Promise<TokenService> {
  const keyPath = path.join(o.dir, 'token-key.pem');
  const certPath = path.join(o.dir, 'token-cert.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyPath, '-out', certPath, '-subj', '/CN=test-token-issuer', '-days', '2'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl: ${r.stderr}`);
  const key = crypto.createPrivateKey(fs.readFileSync(keyPath));
  const x5c = [new crypto.X509Certificate(fs.readFileSync(certPath)).raw.toString('base64')];
  const issuer = o.issuer ?? 'test-issuer';
  const service = o.service ?? 'test-registry';
  const requests: TokenRequest[] = [];

  const sign = (sub: string, access: Array<{ type: string; name: string; actions: string[] }>) => {
    const now = Math.floor(Date.now() / 1000);
    const head = b64url(JSON.stringify({ typ: 'JWT', alg: 'ES256', x5c }));
    const claims = b64url(JSON.stringify({ iss: issuer, sub, aud: service, exp: now + 300, nbf: now - 10, iat: now, jti: crypto.randomUUID(), access }));
    const sig = crypto.sign('sha256', Buffer.from(`${head}.${claims}`), { key, dsaEncoding: 'ieee-p1363' });
    return `${head}.${claims}.${b64url(sig)}`;
  };

  const answer = (req: http.IncomingMessage, res: http.ServerResponse, form?: URLSearchParams) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const scopes = form ? (form.get('scope') ?? '').split(' ').filter(Boolean) : url.searchParams.getAll('scope');
    let user: string | undefined;
    const auth = req.headers.authorization;
    if (form) {
      // OAuth2 with a refresh token, as `docker login` keeps for some registries
      if (form.get('grant_type') !== 'refresh_token' || form.get('refresh_token') !== o.refreshToken) {
        res.writeHead(401, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ details: 'bad refresh token' }));
      }
      user = o.user;
    } else if (auth?.startsWith('Basic ')) {
      const [u, ...p] = Buffer.from(auth.slice(6), 'base64').toString('utf8').split(':');
      if (u !== o.user || p.join(':') !== o.password) {
        res.writeHead(401, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ details: 'wrong user name or password' }));
      }
      user = u;
    }
    requests.push({ user, service: (form ? form.get('service') : url.searchParams.get('service')) ?? undefined, scopes });
    const access = scopes.flatMap((s) => {
      const [type, name, actions] = s.split(':');
      if (type !== 'repository' || !name || !actions) return [];
      const granted = actions.split(',').filter((a) => (user ? true : o.anonymousPull && a === 'pull'));
      return granted.length ? [{ type, name, actions: granted }] : [];
    });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ [form ? 'access_token' : (o.field ?? 'token')]: sign(user ?? '', access), expires_in: 300, issued_at: new Date().toISOString() }));
  };
  const server = http.createServer((req, res) => {
    if (req.method !== 'POST') return answer(req, res);
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => answer(req, res, new URLSearchParams(body)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    certPath,
    issuer,
    service,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
