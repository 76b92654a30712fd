import semver from 'semver';
import type { ConfigMap, ConfigValue } from './yamlconfig.js';
import { asBool, asList, asMap, asString, asStringList, nonEmpty, nonEmptyList, obj, toJson, type Json, type JsonObject } from './fields.js';
import { isKnownCategory } from './categories.js';
import { ingestionMethod } from './ingestion.js';
import { joinPath } from './go-path.js';

/**
 * Turns a package's manifests into the two JSON documents EPR serves: the
 * search summary and the full package info. Field names, defaults and
 * omissions follow EPR so that Fleet cannot tell the difference.
 */

export const DEFAULT_TYPE = 'integration';
export const DEFAULT_LICENSE = 'basic';
export const DEFAULT_STREAM_TEMPLATE = 'stream.yml.hbs';
export const DEFAULT_PIPELINE = 'default';

/** What the filters of /search and /categories look at, kept apart from the JSON. */
export interface PackageFacts {
  name: string;
  version: string;
  release: string;
  type: string;
  formatVersion: string;
  categories: string[];
  kibanaVersion?: string;
  agentVersion?: string;
  capabilities?: string[];
  discoveryFields: string[];
  discoveryDatasets: string[];
  policyTemplates: Array<{ name: string; categories: string[] }>;
}

export interface DataStreamManifest {
  /** folder name below data_stream/ */
  dir: string;
  manifest: ConfigMap;
  hasDefaultPipeline: boolean;
}

export interface PackageDocuments {
  facts: PackageFacts;
  summary: JsonObject;
  info: JsonObject;
}

export interface BuildInput {
  manifest: ConfigMap;
  dataStreams: DataStreamManifest[];
  assets: string[];
  hasReadme: boolean;
  hasSignature: boolean;
}

export function defaultRelease(version: string): string {
  const v = semver.parse(version);
  if (!v) return 'ga';
  return v.major === 0 || v.prerelease.length > 0 ? 'beta' : 'ga';
}

export function buildPackageDocuments(input: BuildInput): PackageDocuments {
  const m = input.manifest;
  const name = asString(m.name) ?? '';
  const version = asString(m.version) ?? '';
  const base = `/package/${name}/${version}`;
  const download = `/epr/${name}/${name}-${version}.zip`;
  const release = nonEmpty(asString(m.release)) ?? defaultRelease(version);
  const type = nonEmpty(asString(m.type)) ?? DEFAULT_TYPE;
  const categories = asStringList(m.categories).filter(isKnownCategory);
  const conditions = asMap(m.conditions);
  const elastic = asMap(conditions?.elastic);
  const subscription = nonEmpty(asString(elastic?.subscription));
  const license = subscription ?? nonEmpty(asString(m.license)) ?? DEFAULT_LICENSE;

  const policyTemplates = asList(m.policy_templates).map(asMap).filter((p): p is ConfigMap => p !== undefined);
  const files = new Set(policyTemplates.length > 0 ? input.assets : []);
  const dataStreams = input.dataStreams.map((ds) => dataStreamJson(ds, name, release));
  const discovery = discoveryJson(asMap(m.discovery));

  const leading: Array<[string, Json | undefined]> = [
    ['name', name],
    ['title', asString(m.title)],
    ['version', version],
    ['release', release],
    ['source', mapJson(asMap(m.source), ['license'])],
    ['description', asString(m.description) ?? ''],
    ['type', type],
    ['download', download],
    ['path', base],
    ['icons', nonEmptyList(images(m.icons, base))],
    ['policy_templates_behavior', nonEmpty(asString(m.policy_templates_behavior))],
  ];
  const trailing: Array<[string, Json | undefined]> = [
    ['conditions', conditionsJson(conditions)],
    ['owner', ownerJson(asMap(m.owner))],
    ['categories', nonEmptyList(categories)],
    ['signature_path', input.hasSignature ? `${download}.sig` : undefined],
    ['discovery', discovery],
    ['deprecated', deprecatedJson(m.deprecated)],
    ['requires', toJson(asMap(m.requires))],
    ['group', nonEmpty(asString(m.group))],
  ];

  const summary = obj([
    ...leading,
    ['policy_templates', nonEmptyList(policyTemplates.map((p) => policyTemplateSummary(p, base)))],
    ...trailing,
    ['data_streams', nonEmptyList(dataStreams.map(dataStreamSummary))],
  ]);

  const info = obj([
    ...leading,
    ...trailing,
    ['format_version', asString(m.format_version) ?? ''],
    ['readme', input.hasReadme ? `${base}/docs/README.md` : undefined],
    ['license', license],
    ['screenshots', nonEmptyList(images(m.screenshots, base))],
    ['assets', nonEmptyList(input.assets.map((a) => `${base}/${a}`))],
    ['policy_templates', nonEmptyList(policyTemplates.map((p) => policyTemplateJson(p, base, files)))],
    ['data_streams', nonEmptyList(dataStreams)],
    ['vars', nonEmptyList(asList(m.vars).map(asMap).filter(isDefined).map(variableJson))],
    ['elasticsearch', packageElasticsearchJson(m.elasticsearch)],
    ['agent', toJson(asMap(m.agent))],
  ]);

  const facts: PackageFacts = {
    name,
    version,
    release,
    type,
    formatVersion: asString(m.format_version) ?? '',
    categories,
    kibanaVersion: nonEmpty(asString(asMap(conditions?.kibana)?.version)),
    agentVersion: nonEmpty(asString(asMap(conditions?.agent)?.version)),
    capabilities: elastic && Array.isArray(elastic.capabilities) ? asStringList(elastic.capabilities) : undefined,
    discoveryFields: asList(asMap(m.discovery)?.fields).map((f) => asString(asMap(f)?.name)).filter(isDefined),
    discoveryDatasets: asList(asMap(m.discovery)?.datasets).map((f) => asString(asMap(f)?.name)).filter(isDefined),
    policyTemplates: policyTemplates.map((p) => ({ name: asString(p.name) ?? '', categories: asStringList(p.categories) })),
  };
  return { facts, summary, info };
}

function isDefined<T>(v: T | undefined): v is T {
  return v !== undefined;
}

function mapJson(m: ConfigMap | undefined, keys: string[]): JsonObject | undefined {
  if (!m) return undefined;
  return obj(keys.map((k) => [k, toJson(m[k] ?? undefined)]));
}

/**
 * Icons and screenshots: `src` exactly as the manifest writes it (Kibana
 * requests that), `path` joined onto the package path the way EPR joins it
 * (Go's path.Join, so `/img//logo.png` gives `.../img/logo.png`).
 */
function images(v: ConfigValue | undefined, base: string): JsonObject[] {
  return asList(v).map(asMap).filter(isDefined).map((img) => {
    const src = asString(img.src) ?? '';
    return obj([
      ['src', src],
      ['path', joinPath(base, src)],
      ['title', nonEmpty(asString(img.title))],
      ['size', nonEmpty(asString(img.size))],
      ['type', nonEmpty(asString(img.type))],
      ['dark_mode', asBool(img.dark_mode)],
    ]);
  });
}

function conditionsJson(c: ConfigMap | undefined): JsonObject | undefined {
  if (!c) return undefined;
  const kibana = asMap(c.kibana);
  const elastic = asMap(c.elastic);
  const agent = asMap(c.agent);
  const out = obj([
    ['kibana', kibana ? obj([['version', nonEmpty(asString(kibana.version))]]) : undefined],
    ['elastic', elastic ? obj([
      ['subscription', asString(elastic.subscription) ?? ''],
      ['capabilities', nonEmptyList(asStringList(elastic.capabilities))],
    ]) : undefined],
    ['agent', agent ? obj([['version', nonEmpty(asString(agent.version))]]) : undefined],
  ]);
  return out;
}

function ownerJson(o: ConfigMap | undefined): JsonObject | undefined {
  if (!o) return undefined;
  return obj([['type', nonEmpty(asString(o.type))], ['github', nonEmpty(asString(o.github))]]);
}

function discoveryJson(d: ConfigMap | undefined): JsonObject | undefined {
  if (!d) return undefined;
  const names = (v: ConfigValue | undefined) => asList(v).map(asMap).filter(isDefined).map((f) => obj([['name', asString(f.name) ?? '']]));
  const fields = names(d.fields);
  const datasets = names(d.datasets);
  if (fields.length === 0 && datasets.length === 0) return undefined;
  return obj([['fields', nonEmptyList(fields)], ['datasets', nonEmptyList(datasets)]]);
}

function deprecatedJson(v: ConfigValue | undefined): JsonObject | undefined {
  const d = asMap(v);
  if (!d) return undefined;
  return obj([
    ['since', nonEmpty(asString(d.since))],
    ['description', nonEmpty(asString(d.description))],
    ['replaced_by', toJson(asMap(d.replaced_by))],
  ]);
}

function deploymentModesJson(v: ConfigValue | undefined): JsonObject | undefined {
  const d = asMap(v);
  if (!d) return undefined;
  const def = asMap(d.default);
  const agentless = asMap(d.agentless);
  return obj([
    ['default', def ? obj([['enabled', asBool(def.enabled) ?? false]]) : undefined],
    ['agentless', agentless ? obj([
      ['enabled', asBool(agentless.enabled) ?? false],
      ['is_default', asBool(agentless.is_default) || undefined],
      ['release', nonEmpty(asString(agentless.release))],
    ]) : undefined],
  ]);
}

function policyTemplateSummary(p: ConfigMap, base: string): JsonObject {
  return obj([
    ['name', asString(p.name) ?? ''],
    ['title', asString(p.title) ?? ''],
    ['description', asString(p.description) ?? ''],
    ['icons', nonEmptyList(images(p.icons, base))],
    ['categories', nonEmptyList(asStringList(p.categories))],
    ['deployment_modes', deploymentModesJson(p.deployment_modes)],
    ['data_streams', nonEmptyList(asStringList(p.data_streams))],
    ['deprecated', deprecatedJson(p.deprecated)],
  ]);
}

/**
 * Where a policy template's own readme is: `docs/<template name>.md`, the
 * name joined as EPR joins it. A path that climbs out of the package is no
 * file of it.
 */
export function policyTemplateReadme(templateName: string): string | undefined {
  const rel = joinPath('docs', `${templateName}.md`);
  return rel === '..' || rel.startsWith('../') ? undefined : rel;
}

function policyTemplateJson(p: ConfigMap, base: string, files: ReadonlySet<string>): JsonObject {
  const input = nonEmpty(asString(p.input));
  const readme = policyTemplateReadme(asString(p.name) ?? '');
  return obj([
    ['name', asString(p.name) ?? ''],
    ['title', asString(p.title) ?? ''],
    ['description', asString(p.description) ?? ''],
    ['data_streams', nonEmptyList(asStringList(p.data_streams))],
    ['inputs', nonEmptyList(asList(p.inputs).map(asMap).filter(isDefined).map(inputJson))],
    ['multiple', asBool(p.multiple) ?? true],
    ['type', nonEmpty(asString(p.type))],
    ['input', input],
    ['ingestion_method', ingestionMethod(input)],
    ['template_path', nonEmpty(asString(p.template_path))],
    ['icons', nonEmptyList(images(p.icons, base))],
    ['screenshots', nonEmptyList(images(p.screenshots, base))],
    ['categories', nonEmptyList(asStringList(p.categories))],
    ['readme', readme !== undefined && files.has(readme) ? joinPath(base, readme) : undefined],
    ['deployment_modes', deploymentModesJson(p.deployment_modes)],
    ['deprecated', deprecatedJson(p.deprecated)],
  ]);
}

function inputJson(i: ConfigMap): JsonObject {
  return obj([
    ['type', nonEmpty(asString(i.type))],
    ['vars', nonEmptyList(asList(i.vars).map(asMap).filter(isDefined).map(variableJson))],
    ['title', nonEmpty(asString(i.title))],
    ['description', nonEmpty(asString(i.description))],
    ['template_path', nonEmpty(asString(i.template_path))],
    ['input_group', nonEmpty(asString(i.input_group))],
    ['package', nonEmpty(asString(i.package))],
    ['deployment_modes', nonEmptyList(asStringList(i.deployment_modes))],
    ['deprecated', deprecatedJson(i.deprecated)],
  ]);
}

export function variableJson(v: ConfigMap): JsonObject {
  return obj([
    ['name', asString(v.name) ?? ''],
    ['type', asString(v.type) ?? ''],
    ['title', nonEmpty(asString(v.title))],
    ['description', nonEmpty(asString(v.description))],
    ['multi', asBool(v.multi) ?? false],
    ['required', asBool(v.required) ?? false],
    ['show_user', asBool(v.show_user) ?? false],
    ['default', v.default === null ? undefined : toJson(v.default)],
    ['deprecated', deprecatedJson(v.deprecated)],
  ]);
}

function streamJson(s: ConfigMap): JsonObject {
  const input = nonEmpty(asString(s.input));
  return obj([
    ['input', input],
    ['vars', nonEmptyList(asList(s.vars).map(asMap).filter(isDefined).map(variableJson))],
    ['dataset', nonEmpty(asString(s.dataset))],
    ['template_path', nonEmpty(asString(s.template_path)) ?? DEFAULT_STREAM_TEMPLATE],
    ['title', nonEmpty(asString(s.title))],
    ['description', nonEmpty(asString(s.description))],
    ['enabled', asBool(s.enabled) ?? true],
    ['ingestion_method', ingestionMethod(input)],
    ['package', nonEmpty(asString(s.package))],
  ]);
}

function dataStreamJson(ds: DataStreamManifest, packageName: string, packageRelease: string): JsonObject {
  const m = ds.manifest;
  const pipeline = nonEmpty(asString(m.ingest_pipeline)) ?? (ds.hasDefaultPipeline ? DEFAULT_PIPELINE : undefined);
  const autoPipeline = !nonEmpty(asString(m.ingest_pipeline)) && ds.hasDefaultPipeline;
  return obj([
    ['type', asString(m.type) ?? ''],
    ['dataset', nonEmpty(asString(m.dataset)) ?? `${packageName}.${ds.dir}`],
    ['dataset_is_prefix', asBool(m.dataset_is_prefix) || undefined],
    ['ilm_policy', nonEmpty(asString(m.ilm_policy))],
    ['hidden', asBool(m.hidden) || undefined],
    ['title', asString(m.title) ?? ''],
    ['release', nonEmpty(asString(m.release)) ?? packageRelease],
    ['ingest_pipeline', pipeline],
    ['streams', nonEmptyList(asList(m.streams).map(asMap).filter(isDefined).map(streamJson))],
    ['package', packageName],
    ['elasticsearch', dataStreamElasticsearchJson(m.elasticsearch, autoPipeline ? DEFAULT_PIPELINE : undefined)],
    ['agent', toJson(asMap(m.agent))],
    ['deprecated', deprecatedJson(m.deprecated)],
    ['path', ds.dir],
  ]);
}

function dataStreamSummary(ds: JsonObject): JsonObject {
  return obj([['type', ds.type], ['dataset', ds.dataset], ['title', ds.title], ['deprecated', ds.deprecated]]);
}

function dataStreamElasticsearchJson(v: ConfigValue | undefined, autoPipeline: string | undefined): JsonObject | undefined {
  const es = asMap(v);
  if (!es) return undefined;
  const template = asMap(es.index_template);
  const privileges = asMap(es.privileges);
  return obj([
    ['index_template.settings', toJson(asMap(template?.settings))],
    ['index_template.mappings', toJson(asMap(template?.mappings))],
    ['ingest_pipeline.name', nonEmpty(asString(asMap(es.ingest_pipeline)?.name)) ?? autoPipeline],
    ['source_mode', nonEmpty(asString(es.source_mode))],
    ['privileges', privileges ? obj([['indices', nonEmptyList(asStringList(privileges.indices))]]) : undefined],
  ]);
}

function packageElasticsearchJson(v: ConfigValue | undefined): JsonObject | undefined {
  const es = asMap(v);
  if (!es) return undefined;
  const privileges = asMap(es.privileges);
  return obj([['privileges', privileges ? obj([['cluster', nonEmptyList(asStringList(privileges.cluster))]]) : undefined]]);
}
