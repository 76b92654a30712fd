import type { NextFunction, Request, Response } from 'express';
import fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type { RegistryContext } from '../context.js';
import { HttpError } from '../http/errors.js';
import { allowCors, cacheHeader } from '../http/respond.js';
import { NAME_RE, versionFromUrl } from '../http/paths.js';
import { fileEtag, serveFile } from '../http/serve-file.js';
import { zipPackage } from '../packages/archive.js';
import { ZipSource } from '../packages/source.js';
import { openFile, sendFileBody } from '../http/send-file.js';
import { fileBytes, headersOf, sendFileAnswer, storedFileAnswer } from '../http/response-cache.js';

const ARTIFACT_RE = /^\/epr\/[^/]+\/([a-z0-9_]+)-([^/]+)\.zip(\.sig)?$/;

/**
 * `/epr/{name}/{name}-{version}.zip` and its `.sig`. The first segment is not
 * used for the lookup, as in EPR. Zip packages are sent as they are (ranges);
 * directory packages are zipped on the fly, streamed.
 */
export function artifactRoute(ctx: RegistryContext) {
  return async (req: Request, res: Response, next: NextFunction) => {
    const m = ARTIFACT_RE.exec(req.path);
    if (!m || !NAME_RE.test(m[1])) { next(); return; }
    allowCors(res);
    const [, name, rawVersion, sig] = m;
    const version = versionFromUrl(rawVersion);
    const pkg = ctx.index.get(name, version);
    if (sig) {
      if (!pkg || !pkg.signatureFile) {
        if (!pkg && ctx.upstream && await ctx.upstream.forward(req, res)) return;
        throw HttpError.of('signatureNotFound');
      }
      const st = await fs.promises.stat(pkg.signatureFile);
      await serveFile(req, res, {
        size: st.size, mtime: st.mtime, etag: fileEtag(st.size, st.mtime), contentType: 'application/octet-stream',
        open: async (start, end) => fs.createReadStream(pkg.signatureFile!, { start, end }),
      }, ctx.cacheTime.catchAll);
      return;
    }
    if (!pkg) {
      if (ctx.upstream && await ctx.upstream.forward(req, res)) return;
      throw HttpError.of('artifactNotFound');
    }
    if (pkg.source instanceof ZipSource) {
      // the file as stored, or the same bytes rebuilt from its recipe (packages/zip-recipe.ts)
      const zip = pkg.source.archive;
      const st = await zip.stat();
      if (st.size === 0) {
        await serveFile(req, res, {
          size: st.size, mtime: st.mtime, etag: fileEtag(st.size, st.mtime), contentType: 'application/zip',
          open: async (start, end) => zip.createReadStream(start, end),
        }, ctx.cacheTime.catchAll);
        return;
      }
      // Kept as a ready answer: the next downloads of this URL (GET or HEAD,
      // ranges and 304s too) are written before the router, from memory once
      // the bytes are held there (the budget shared with made zips), else
      // straight from the file. A recipe's zip is rebuilt once into the
      // folder of made zips (bounded on disk like them): sent from one file,
      // not from an open and a read of every entry of the store.
      const stored = { etag: fileEtag(st.size, st.mtime), mtime: st.mtime, contentType: 'application/zip', cacheSeconds: ctx.cacheTime.catchAll };
      const answerFor = async (rebuilt: boolean) => {
        const made = rebuilt && zip.recipe && ctx.zips ? await ctx.zips.getStored(zip, pkg.key) : undefined;
        const file = made && made.size === st.size ? made.file : zip.file;
        const pieces = file === zip.file && zip.recipe ? (start: number, end: number) => zip.pieces(start, end) : undefined;
        return storedFileAnswer(ctx.answers?.heldBytes(file, st.size) ?? fileBytes(file, st.size, pieces), stored);
      };
      let answer = await answerFor(true);
      ctx.answers?.setFile(req.originalUrl, answer);
      if (await sendFileAnswer(res, answer)) return;
      // the rebuilt file is gone (a tmp cleaner): from the recipe's pieces now, rebuilt again next time
      ctx.answers?.deleteFile(req.originalUrl);
      if (!zip.recipe) throw new Error(`${zip.file} cannot be opened`);
      ctx.zips?.forget(`${pkg.key}.stored`);
      answer = await answerFor(false);
      if (!(await sendFileAnswer(res, answer))) throw new Error(`${zip.file}: the recipe's entries cannot be opened`);
      return;
    }
    // As EPR: a directory package's zip is made, not stored, so it offers no ranges.
    res.statusCode = 200;
    res.setHeader('Content-Type', 'application/zip');
    cacheHeader(res, ctx.cacheTime.catchAll);
    if (req.method === 'HEAD') { res.end(); return; }
    const made = ctx.zips ? await ctx.zips.get(pkg.source, pkg.key) : undefined;
    const fd = made ? await openFile(made.file).catch(() => undefined) : undefined;
    // removed from disk since (by an eviction, or a tmp cleaner): zipped on the fly now, made again next time
    if (made && fd === undefined) ctx.zips!.forget(pkg.key);
    if (made && fd !== undefined) {
      res.setHeader('Content-Length', made.size);
      // the next download of this URL is written straight from the file, before the router
      ctx.answers?.setFile(req.originalUrl, { bytes: fileBytes(made.file, made.size), headers: headersOf(res) });
      await sendFileBody(res, fd, 0, made.size - 1);
      return;
    }
    await pipeline(zipPackage(pkg.source, pkg.key), res);
  };
}
