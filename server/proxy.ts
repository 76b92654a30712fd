import http from 'node:http';
import https from 'node:https';
import type { Request, Response } from 'express';
import type { Logger } from './logger.js';
import type { JsonObject } from './packages/fields.js';
import { byteCompare } from './packages/source.js';
import { compareVersions } from './packages/versions.js';
import semver from 'semver';

/**
 * Proxy mode: another registry behind this one. Its /search and /categories
 * answers are merged with the local ones (local wins for the same
 * name+version); what is not found locally is fetched from it. An upstream
 * that fails or is slow degrades to local answers, never to a hang.
 */
export interface UpstreamOptions {
  baseUrl: string;
  allowInsecure: boolean;
  timeoutMs?: number;
  retries?: number;
  logger: Logger;
}

interface UpstreamAnswer { status: number; headers: http.IncomingHttpHeaders; body: Buffer }

export class Upstream {
  private readonly base: URL;
  private readonly timeoutMs: number;
  private readonly retries: number;

  constructor(private readonly opts: UpstreamOptions) {
    this.base = new URL(opts.baseUrl);
    if (this.base.protocol !== 'https:' && this.base.protocol !== 'http:') throw new Error(`proxy-to must be an http(s) URL, got ${opts.baseUrl}`);
    if (this.base.protocol === 'http:' && !opts.allowInsecure) {
      throw new Error(`proxy-to ${opts.baseUrl} is not https; use an https URL or --proxy-allow-insecure`);
    }
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.retries = opts.retries ?? 1;
  }

  private url(pathAndQuery: string): URL {
    const basePath = this.base.pathname.replace(/\/+$/, '');
    const u = new URL(this.base.toString());
    const q = pathAndQuery.indexOf('?');
    u.pathname = basePath + (q < 0 ? pathAndQuery : pathAndQuery.slice(0, q));
    u.search = q < 0 ? '' : pathAndQuery.slice(q);
    return u;
  }

  private once(u: URL): Promise<UpstreamAnswer> {
    const mod = u.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      // One deadline for the whole exchange (connect, headers, body): a socket
      // idle timeout alone never fires for an upstream that trickles bytes.
      const deadline = setTimeout(() => {
        const err = new Error(`no complete answer within ${this.timeoutMs} ms`);
        req.destroy(err);
        reject(err);
      }, this.timeoutMs);
      const fail = (err: Error) => { clearTimeout(deadline); reject(err); };
      const req = mod.get(u, { rejectUnauthorized: !this.opts.allowInsecure, headers: { 'User-Agent': 'package-registry-proxy' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => { clearTimeout(deadline); resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks) }); });
        res.on('error', fail);
        res.on('aborted', () => fail(new Error('the upstream cut its answer short')));
      });
      req.on('error', fail);
    });
  }

  /** GET with bounded retries on network errors; undefined (and a warning) when the upstream cannot answer. */
  async get(pathAndQuery: string): Promise<UpstreamAnswer | undefined> {
    const u = this.url(pathAndQuery);
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      try {
        return await this.once(u);
      } catch (err) {
        if (attempt === this.retries) {
          this.opts.logger.warn('proxy upstream unavailable, answering with local packages only', { 'url.full': u.toString(), 'error.message': (err as Error).message });
        }
      }
    }
    return undefined;
  }

  async getJsonArray(pathAndQuery: string): Promise<JsonObject[] | undefined> {
    const answer = await this.get(pathAndQuery);
    if (!answer || answer.status !== 200) return undefined;
    try {
      const parsed: unknown = JSON.parse(answer.body.toString('utf8'));
      return Array.isArray(parsed) ? parsed as JsonObject[] : undefined;
    } catch {
      this.opts.logger.warn('proxy upstream sent invalid JSON', { 'url.path': pathAndQuery });
      return undefined;
    }
  }

  /** Sends the upstream's answer for this request when it has one (2xx); false otherwise. */
  async forward(req: Request, res: Response): Promise<boolean> {
    const answer = await this.get(req.originalUrl);
    if (!answer || answer.status < 200 || answer.status >= 300) return false;
    res.statusCode = answer.status;
    for (const h of ['content-type', 'cache-control', 'last-modified', 'content-range', 'accept-ranges']) {
      const v = answer.headers[h];
      if (v !== undefined) res.setHeader(h, v);
    }
    res.setHeader('Content-Length', answer.body.length);
    res.end(req.method === 'HEAD' ? undefined : answer.body);
    return true;
  }
}

export interface MergeSearchOptions {
  /** all=true: every version; otherwise only the newest of each package across both sides is kept */
  all?: boolean;
  /** the legacy experimental=true search: a stable version is preferred over a newer pre-release */
  preferStable?: boolean;
}

/**
 * Local search entries plus the upstream's that are not local (same
 * name+version: local wins), by name then version. Without all=true each side
 * sent its newest version of a package; only the newer of the two is kept, so
 * the answer still has one entry per package (as EPR does in proxy mode).
 */
export function mergeSearch(local: JsonObject[], upstream: JsonObject[], opts: MergeSearchOptions = {}): JsonObject[] {
  const key = (p: JsonObject) => `${String(p.name)}@${String(p.version)}`;
  const have = new Set(local.map(key));
  const merged = [...local, ...upstream.filter((p) => !have.has(key(p)))];
  const sorted = merged.sort((a, b) => byteCompare(String(a.name), String(b.name)) || versionOrder(String(a.version), String(b.version)));
  if (opts.all) return sorted;
  const newest = new Map<string, JsonObject>();
  for (const p of sorted) {
    const name = String(p.name);
    const cur = newest.get(name);
    if (!cur || !(opts.preferStable && isPre(String(p.version)) && !isPre(String(cur.version)))) newest.set(name, p);
  }
  return sorted.filter((p) => newest.get(String(p.name)) === p);
}

function isPre(v: string): boolean {
  return (semver.prerelease(v)?.length ?? 0) > 0;
}

function versionOrder(a: string, b: string): number {
  return semver.valid(a) && semver.valid(b) ? compareVersions(a, b) : byteCompare(a, b);
}

/** Category counts added together by id; the local title and parent are kept where both have one. */
export function mergeCategories(local: JsonObject[], upstream: JsonObject[]): JsonObject[] {
  const byId = new Map<string, JsonObject>();
  for (const c of local) byId.set(String(c.id), { ...c });
  for (const c of upstream) {
    const id = String(c.id);
    const cur = byId.get(id);
    if (cur) cur.count = Number(cur.count) + Number(c.count ?? 0);
    else byId.set(id, { ...c });
  }
  return [...byId.values()].sort((a, b) => byteCompare(String(a.id), String(b.id)));
}
