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
    const filter = parseFilter(params);
    const local = selectPackages(ctx.index.all, filter).map(searchEntry);
    const upstream = ctx.upstream ? await ctx.upstream.getJsonArray(req.originalUrl) : undefined;
    const merged = upstream ? mergeSearch(local, upstream, { all: filter.all, preferStable: filter.experimental }) : local;
    sendJson(res, jsonBody(merged), ctx.cacheTime.search, ctx.answers);
  };
}
