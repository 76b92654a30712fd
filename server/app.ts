import express, { type NextFunction, type Request, type Response } from 'express';
import type { RegistryContext } from './context.js';
import { HttpError } from './http/errors.js';
import { allowCors, sendError } from './http/respond.js';
import { redirectUncleanPath } from './http/clean-path.js';
import type { Logger } from './logger.js';
import { faviconRoute, healthRoute, indexRoute } from './routes/index.js';
import { searchRoute } from './routes/search.js';
import { categoriesRoute } from './routes/categories.js';
import { packageRoute } from './routes/package.js';
import { artifactRoute } from './routes/artifacts.js';
import { legacyRoute } from './routes/legacy.js';

/** The Express app: middleware and route wiring only; every answer is made in routes/. */
export function createApp(ctx: RegistryContext, logger: Logger): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.set('query parser', false);

  app.use(redirectUncleanPath);
  app.use((req, res, next) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') { sendError(res, HttpError.of('methodNotAllowed', { Allow: 'GET, HEAD' })); return; }
    next();
  });

  const cors = (_req: Request, res: Response, next: NextFunction) => { allowCors(res); next(); };
  const index = indexRoute(ctx);
  app.get('/', cors, index);
  app.get('/index.json', cors, index);
  app.get('/health', cors, healthRoute());
  app.get('/favicon.ico', cors, faviconRoute(ctx));
  app.get('/search', cors, searchRoute(ctx));
  app.get('/categories', cors, categoriesRoute(ctx));
  // These two match their own paths (names, versions, file paths) and call next() when they do not.
  app.use(packageRoute(ctx));
  app.use(artifactRoute(ctx));
  app.use(legacyRoute(ctx));

  app.use((_req: Request, res: Response) => sendError(res, HttpError.of('routeNotFound')));
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    if (err instanceof HttpError) { sendError(res, err); return; }
    if ((err as { code?: string }).code === 'ERR_STREAM_PREMATURE_CLOSE' || req.socket.destroyed) {
      // the client went away mid-answer: nothing to send, nothing wrong here
      logger.debug('client closed the connection before the answer was complete', { 'url.original': req.originalUrl });
      return;
    }
    const status = (err as { status?: number }).status;
    if (status && status >= 400 && status < 500) {
      // malformed requests caught by Express itself (bad URL encoding and the like)
      sendError(res, new HttpError(status, status === 404 ? '404 page not found' : 'bad request'));
      return;
    }
    logger.error('request failed', { 'url.original': req.originalUrl, 'error.message': (err as Error)?.message, 'error.stack_trace': (err as Error)?.stack });
    sendError(res, HttpError.of('internal'));
  });
  return app;
}
