import type { Request, Response } from 'express';
import type { RegistryContext } from '../context.js';
import { jsonBody, sendJson } from '../http/respond.js';
import { checkUnknown, parseFilter, queryOf, SEARCH_PARAMS } from '../http/query.js';
import { searchEntry, selectPackages } from '../packages/filters.js';
import { mergeSearch } from '../proxy.js';

/** `/search`: the newest matching version of each package (every version with all=true). */
export function searchRoute(ctx: RegistryContext) {
  return async (req: Request, res: Response) => {
    const params = queryOf(req.originalUrl);
    checkUnknown(params, SEARCH_PARAMS, ctx.allowUnknownQueryParameters);
    const local = selectPackages(ctx.index.all, parseFilter(params)).map(searchEntry);
    const upstream = ctx.upstream ? await ctx.upstream.getJsonArray(req.originalUrl) : undefined;
    sendJson(res, jsonBody(upstream ? mergeSearch(local, upstream) : local), ctx.cacheTime.search, ctx.answers);
  };
}
