import semver, { type SemVer } from 'semver';
import type { Package } from './package.js';
import { categoryMatches } from './categories.js';
import { compareVersions, isPrerelease } from './versions.js';
import type { JsonObject } from './fields.js';

/**
 * The package selection behind /search and /categories, as pure functions
 * over the index. Query parsing lives in the HTTP layer; this only decides.
 */
export interface PackageFilter {
  all?: boolean;
  prerelease?: boolean;
  /** legacy Kibana (8.0-8.5) behaviour, see legacySelect */
  experimental?: boolean;
  packageName?: string;
  type?: string;
  category?: string;
  kibanaVersion?: SemVer;
  agentVersion?: SemVer;
  capabilities?: string[];
  specMin?: SemVer;
  specMax?: SemVer;
  discovery?: DiscoveryFilter[];
}

export type DiscoveryFilter = { kind: 'fields' | 'datasets'; values: string[] };

/** A selected package; `policyTemplates` narrows the templates shown when a category matched only some. */
export interface Selected {
  pkg: Package;
  policyTemplateNames?: Set<string>;
}

export function satisfiesConstraint(version: SemVer, constraint: string | undefined): boolean {
  if (!constraint) return true;
  try {
    return semver.satisfies(version, normaliseConstraint(constraint));
  } catch {
    return false;
  }
}

/** Go's constraint syntax allows commas between AND-ed comparators. */
function normaliseConstraint(c: string): string {
  return c.replace(/,/g, ' ');
}

function hasCapabilities(p: Package, allowed: string[]): boolean {
  const needed = p.facts.capabilities;
  if (!needed || needed.length === 0) return true;
  return needed.every((c) => allowed.includes(c));
}

function specWithin(p: Package, min?: SemVer, max?: SemVer): boolean {
  if (!min && !max) return true;
  const v = semver.parse(p.facts.formatVersion);
  if (!v) return false;
  const cut = new semver.SemVer(`${v.major}.${v.minor}.0`);
  if (min && semver.lt(cut, min)) return false;
  if (max && semver.gt(cut, max)) return false;
  return true;
}

function matchesDiscovery(p: Package, filters: DiscoveryFilter[]): boolean {
  return filters.every((f) => {
    if (f.kind === 'fields') {
      const fields = p.facts.discoveryFields;
      return fields.length > 0 && fields.every((x) => f.values.includes(x));
    }
    return p.facts.discoveryDatasets.some((x) => f.values.includes(x));
  });
}

/** Released packages only, unless pre-releases were asked for: no experimental release, no semver pre-release. */
function isPrereleasePackage(p: Package): boolean {
  return p.facts.release === 'experimental' || isPrerelease(p.semver);
}

function newestPerName(list: Package[]): Package[] {
  const newest = new Map<string, Package>();
  for (const p of list) {
    const cur = newest.get(p.name);
    if (!cur || compareVersions(p.semver, cur.semver) > 0) newest.set(p.name, p);
  }
  return list.filter((p) => newest.get(p.name) === p);
}

/** Category matching: on the package, or else on some of its policy templates (which then are all that is shown). */
function byCategory(list: Package[], category: string): Selected[] {
  const out: Selected[] = [];
  for (const pkg of list) {
    if (pkg.facts.categories.some((c) => categoryMatches(c, category))) {
      out.push({ pkg });
      continue;
    }
    const templates = pkg.facts.policyTemplates.filter((t) => t.categories.some((c) => categoryMatches(c, category)));
    if (templates.length > 0) out.push({ pkg, policyTemplateNames: new Set(templates.map((t) => t.name)) });
  }
  return out;
}

export function selectPackages(all: Package[], f: PackageFilter): Selected[] {
  if (f.experimental) return legacySelect(all, f);
  const matching = all.filter((p) =>
    (f.prerelease || !isPrereleasePackage(p))
    && (!f.type || p.facts.type === f.type)
    && (!f.packageName || p.name === f.packageName)
    && (!f.kibanaVersion || satisfiesConstraint(f.kibanaVersion, p.facts.kibanaVersion))
    && (!f.agentVersion || satisfiesConstraint(f.agentVersion, p.facts.agentVersion))
    && (!f.capabilities || hasCapabilities(p, f.capabilities))
    && specWithin(p, f.specMin, f.specMax)
    && (!f.discovery || matchesDiscovery(p, f.discovery)));
  const chosen = f.all ? matching : newestPerName(matching);
  return f.category ? byCategory(chosen, f.category) : chosen.map((pkg) => ({ pkg }));
}

/** Pre-release in the legacy sense: a semver pre-release or a 0.x version. */
function legacyUnstable(p: Package): boolean {
  return isPrerelease(p.semver) || p.semver.major < 1;
}

/**
 * What Kibana 8.0-8.5 got with `experimental=true`: experimental packages
 * included, only kibana.version/package/type applied, the newest stable
 * version preferred over a newer pre-release; with all=true, unstable versions
 * of packages that have a stable one are dropped.
 */
function legacySelect(all: Package[], f: PackageFilter): Selected[] {
  const matching = all.filter((p) =>
    (!f.type || p.facts.type === f.type)
    && (!f.packageName || p.name === f.packageName)
    && (!f.kibanaVersion || satisfiesConstraint(f.kibanaVersion, p.facts.kibanaVersion)));
  const hasStable = new Set(matching.filter((p) => !legacyUnstable(p)).map((p) => p.name));
  let chosen: Package[];
  if (f.all) {
    chosen = matching.filter((p) => !hasStable.has(p.name) || !legacyUnstable(p));
  } else {
    const best = new Map<string, Package>();
    for (const p of matching) {
      const cur = best.get(p.name);
      if (!cur) { best.set(p.name, p); continue; }
      const better = legacyUnstable(cur) !== legacyUnstable(p) ? legacyUnstable(cur) : compareVersions(p.semver, cur.semver) > 0;
      if (better) best.set(p.name, p);
    }
    chosen = matching.filter((p) => best.get(p.name) === p);
  }
  return f.category ? byCategory(chosen, f.category) : chosen.map((pkg) => ({ pkg }));
}

/** The search entry of a selection, with policy templates narrowed when a category matched only some. */
export function searchEntry(s: Selected): JsonObject {
  if (!s.policyTemplateNames) return s.pkg.summary;
  const templates = (s.pkg.summary.policy_templates as JsonObject[] | undefined) ?? [];
  return { ...s.pkg.summary, policy_templates: templates.filter((t) => s.policyTemplateNames!.has(String(t.name))) };
}

export interface CategoryCount { id: string; count: number }

/**
 * Category counts over a selection. With policy templates included, every
 * template counts once for each of its own categories and once more for each
 * category of the template and the package together (EPR's reference answers
 * show both), except that a package whose single template has no categories
 * adds nothing extra.
 */
export function countCategories(selected: Selected[], includePolicyTemplates: boolean): Map<string, number> {
  const counts = new Map<string, number>();
  const add = (c: string) => counts.set(c, (counts.get(c) ?? 0) + 1);
  for (const { pkg } of selected) {
    for (const c of pkg.facts.categories) add(c);
    if (!includePolicyTemplates) continue;
    const templates = pkg.facts.policyTemplates;
    if (templates.length === 1 && templates[0].categories.length === 0) continue;
    for (const t of templates) {
      const own = new Set(t.categories);
      for (const c of own) add(c);
      for (const c of new Set([...own, ...pkg.facts.categories])) add(c);
    }
  }
  return counts;
}
