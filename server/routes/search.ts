import type { Request, Response } from 'express';
import type { RegistryContext } from '../context.js';
import { jsonBody, sendJson } from '../http/respond.js';
import { checkUnknown, parseFilter, queryOf, SEARCH_PARAMS } from '../http/query.js';
import { searchEntry, selectPackages } from '../packages/filters.js';

/** `/search`: the newest matching version of each package (every version with all=true). */
export function searchRoute(ctx: RegistryContext) {
  return (req: Request, res: Response) => {
    const params = queryOf(req.originalUrl);
    checkUnknown(params, SEARCH_PARAMS, ctx.allowUnknownQueryParameters);
    const selected = selectPackages(ctx.index.all, parseFilter(params));
    sendJson(res, jsonBody(selected.map(searchEntry)), ctx.cacheTime.search);
  };
}
