import type { NextFunction, Request, Response } from 'express';
import { pipeline } from 'node:stream/promises';
import type { RegistryContext } from '../context.js';
import { HttpError } from '../http/errors.js';
import { allowCors, cacheHeader, jsonBody, sendJson } from '../http/respond.js';
import { versionFromUrl } from '../http/paths.js';
import { tarGzPackage } from '../packages/archive.js';

/**
 * The first registry API, still spoken by Kibana 7.8-7.9:
 * `/package/{name}-{version}` (package info, downloading a tar.gz),
 * `/package/{name}-{version}.tar.gz` and `/epr/{name}/{name}-{version}.tar.gz`.
 */
const LEGACY_INFO = /^\/package\/([a-z0-9_]+)-([^/]+?)\/?$/;
const LEGACY_ARCHIVE = /^\/(?:package|epr\/[^/]+)\/([a-z0-9_]+)-([^/]+)\.tar\.gz$/;

export function legacyDownloadPath(name: string, version: string): string {
  return `/epr/${name}/${name}-${version}.tar.gz`;
}

export function legacyRoute(ctx: RegistryContext) {
  return async (req: Request, res: Response, next: NextFunction) => {
    const archive = LEGACY_ARCHIVE.exec(req.path);
    const info = archive ? undefined : LEGACY_INFO.exec(req.path);
    const m = archive ?? info;
    if (!m) { next(); return; }
    allowCors(res);
    const version = versionFromUrl(m[2]);
    const pkg = ctx.index.get(m[1], version);
    if (!pkg) throw HttpError.of(archive ? 'artifactNotFound' : 'packageNotFound');
    if (info) {
      sendJson(res, jsonBody({ ...pkg.info, download: legacyDownloadPath(pkg.name, pkg.version) }), ctx.cacheTime.index, ctx.answers);
      return;
    }
    res.statusCode = 200;
    res.setHeader('Content-Type', 'application/gzip');
    cacheHeader(res, ctx.cacheTime.catchAll);
    if (req.method === 'HEAD') { res.end(); return; }
    await pipeline(tarGzPackage(pkg.source, pkg.key), res);
  };
}
