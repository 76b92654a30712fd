import type { NextFunction, Request, Response } from 'express';
import type { RegistryContext } from '../context.js';
import { allowCors, jsonBody, sendJson } from '../http/respond.js';
import { HttpError } from '../http/errors.js';
import { decodeSegments, NAME_RE, requireVersion } from '../http/paths.js';
import { contentTypeFor } from '../http/content-type.js';
import { bufferServable, fileEtag, serveFile, type Servable } from '../http/serve-file.js';
import type { Package } from '../packages/package.js';
import { DirectorySource } from '../packages/source.js';
import fs from 'node:fs';
import { makeFileAnswer, writeAnswer } from '../http/response-cache.js';

/**
 * `/package/{name}/{version}/` (package info), `/package/{name}/{version}`
 * (301 to the slashed form) and `/package/{name}/{version}/{path}` (a file
 * inside the package).
 */
export function packageRoute(ctx: RegistryContext) {
  return async (req: Request, res: Response, next: NextFunction) => {
    const raw = req.path.replace(/^\/package\//, '');
    const [rawName, rawVersion, ...rest] = raw.split('/');
    if (!req.path.startsWith('/package/') || !rawName || rawVersion === undefined || rawVersion === '' || !NAME_RE.test(rawName)) { next(); return; }
    allowCors(res);
    if (rest.length === 0) {
      const q = req.originalUrl.indexOf('?');
      res.redirect(301, `/package/${rawName}/${rawVersion}/${q < 0 ? '' : req.originalUrl.slice(q)}`);
      return;
    }
    const version = requireVersion(decodeSegments(rawVersion)[0]);
    const pkg = ctx.index.get(rawName, version);
    if (rest.length === 1 && rest[0] === '') {
      if (!pkg) {
        if (ctx.upstream && await ctx.upstream.forward(req, res)) return;
        throw HttpError.of('packageNotFound');
      }
      sendJson(res, jsonBody(pkg.info), ctx.cacheTime.index, ctx.answers);
      return;
    }
    const segments = decodeSegments(rest.join('/'));
    if (segments.some((s) => s === '')) throw HttpError.of('invalidPath');
    if (!pkg) {
      if (ctx.upstream && await ctx.upstream.forward(req, res)) return;
      throw HttpError.of('packageNotFound');
    }
    const file = pkg.source.file(segments.join('/'));
    if (!file) throw HttpError.of('resourceNotFound');
    const servable = await packageFileServable(pkg, file.path);
    if (servable.size <= MAX_FILE_IN_MEMORY) {
      // small files (nearly all of a package) are kept ready like the JSON answers
      const answer = makeFileAnswer(await readAll(servable), servable.contentType, ctx.cacheTime.catchAll, servable.mtime);
      ctx.answers?.set(req.originalUrl, answer);
      writeAnswer(req, res, answer);
      return;
    }
    await serveFile(req, res, servable, ctx.cacheTime.catchAll);
  };
}

/**
 * Real packages' screenshots (PNG) run to several hundred kB: kept in memory
 * too, they go out in one write instead of a file stream through the router.
 * The response cache bounds the total.
 */
const MAX_FILE_IN_MEMORY = 1024 * 1024;

async function readAll(s: Servable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  if (s.size === 0) return Buffer.alloc(0);
  for await (const c of await s.open(0, s.size - 1)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function packageFileServable(pkg: Package, rel: string): Promise<Servable> {
  const source = pkg.source;
  if (source instanceof DirectorySource) {
    const abs = source.resolve(rel);
    const st = await fs.promises.stat(abs, { bigint: true });
    const size = Number(st.size);
    const mtime = new Date(Number(st.mtimeMs));
    const head = Buffer.alloc(Math.min(512, size));
    if (head.length > 0) {
      const fh = await fs.promises.open(abs, 'r');
      try { await fh.read(head, 0, head.length, 0); } finally { await fh.close(); }
    }
    return {
      size,
      mtime,
      etag: fileEtag(size, mtime, st.mtimeNs),
      contentType: contentTypeFor(rel, head),
      open: async (start, end) => fs.createReadStream(abs, { start, end }),
    };
  }
  // Entries of a zip are read whole: they are a package's small files, and ranges need offsets.
  const buf = await source.readFile(rel);
  const mtime = (await fs.promises.stat(source.location)).mtime;
  return bufferServable(buf, contentTypeFor(rel, buf.subarray(0, 512)), mtime);
}
