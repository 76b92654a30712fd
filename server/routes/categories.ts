import type { Request, Response } from 'express';
import type { RegistryContext } from '../context.js';
import { jsonBody, sendJson } from '../http/respond.js';
import { checkUnknown, parseBool, parseFilter, queryOf, CATEGORIES_PARAMS } from '../http/query.js';
import { countCategories, selectPackages } from '../packages/filters.js';
import { CATEGORIES, isKnownCategory } from '../packages/categories.js';
import { byteCompare } from '../packages/source.js';
import { obj } from '../packages/fields.js';
import { mergeCategories } from '../proxy.js';

/** `/categories`: how many of the selected packages fall in each category, sorted by id. */
export function categoriesRoute(ctx: RegistryContext) {
  return async (req: Request, res: Response) => {
    const params = queryOf(req.originalUrl);
    checkUnknown(params, CATEGORIES_PARAMS, ctx.allowUnknownQueryParameters);
    const includeTemplates = parseBool(params, 'include_policy_templates') ?? false;
    const filter = { ...parseFilter(params), all: false, packageName: undefined, type: undefined, category: undefined };
    const counts = countCategories(selectPackages(ctx.index.all, filter), includeTemplates);
    const body = [...counts.entries()].sort(([a], [b]) => byteCompare(a, b)).map(([id, count]) => {
      const def = isKnownCategory(id) ? CATEGORIES[id] : undefined;
      const parent = def?.parent;
      return obj([
        ['id', id],
        ['title', def?.title ?? id],
        ['count', count],
        ['parent_id', parent],
        ['parent_title', parent ? (CATEGORIES[parent]?.title ?? parent) : undefined],
      ]);
    });
    const upstream = ctx.upstream ? await ctx.upstream.getJsonArray(req.originalUrl) : undefined;
    sendJson(res, jsonBody(upstream ? mergeCategories(body, upstream) : body), ctx.cacheTime.categories, ctx.answers);
  };
}
