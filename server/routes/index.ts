import type { Request, Response } from 'express';
import type { RegistryContext } from '../context.js';
import { jsonBody, sendJson, cacheHeader } from '../http/respond.js';
import { FAVICON } from './favicon.js';

/** `/` and `/index.json`: who is answering. */
export function indexRoute(ctx: RegistryContext) {
  const body = jsonBody({ 'service.name': ctx.serviceName, 'service.version': ctx.serviceVersion });
  return (_req: Request, res: Response) => sendJson(res, body, ctx.cacheTime.index, ctx.answers);
}

/** `/health`: 200 with an empty body; the server binds only once indexing is done. */
export function healthRoute() {
  return (_req: Request, res: Response) => {
    res.statusCode = 200;
    res.setHeader('Content-Length', 0);
    res.end();
  };
}

export function faviconRoute(ctx: RegistryContext) {
  return (_req: Request, res: Response) => {
    res.statusCode = 200;
    res.setHeader('Content-Type', 'image/x-icon');
    cacheHeader(res, ctx.cacheTime.catchAll);
    res.setHeader('Content-Length', FAVICON.length);
    res.end(FAVICON);
  };
}
