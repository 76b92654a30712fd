import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ingestionMethod, ingestionTable } from '../../server/packages/ingestion.js';
import { buildPackageDocuments, policyTemplateReadme, type DataStreamManifest } from '../../server/packages/manifest.js';
import type { ConfigMap } from '../../server/packages/yamlconfig.js';
import type { JsonObject } from '../../server/packages/fields.js';

/** dist/test/unit -> ../shared/docs/epr-api.md next to the project */
const EPR_API = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'shared', 'docs', 'epr-api.md');

/** EPR's table, written out again here, so that a slip in either copy shows. */
const TABLE: Record<string, string> = {
  cel: 'API', 'entity-analytics': 'API', httpjson: 'API', o365audit: 'API', salesforce: 'API', streaming: 'API', websocket: 'API', winlog: 'API',
  'apache/metrics': 'API', 'aws/metrics': 'API', 'awsfargate/metrics': 'API', 'azure/metrics': 'API', 'containerd/metrics': 'API',
  'docker/metrics': 'API', 'elasticsearch/metrics': 'API', 'enterprisesearch/metrics': 'API', 'etcd/metrics': 'API', 'gcp/metrics': 'API',
  'haproxy/metrics': 'API', 'http/metrics': 'API', 'kibana/metrics': 'API', 'kubernetes/metrics': 'API', 'logstash/metrics': 'API',
  'meraki/metrics': 'API', 'nats/metrics': 'API', 'nginx/metrics': 'API', 'panw/metrics': 'API', 'rabbitmq/metrics': 'API',
  'stan/metrics': 'API', 'vsphere/metrics': 'API', 'windows/metrics': 'API',
  'aws-cloudwatch': 'AWS CloudWatch', 'aws-s3': 'AWS S3', 'azure-blob-storage': 'Azure Blob Storage', 'azure-eventhub': 'Azure Event Hub',
  'memcached/metrics': 'Database', 'mongodb/metrics': 'Database', 'mysql/metrics': 'Database', 'postgresql/metrics': 'Database',
  redis: 'Database', 'redis/metrics': 'Database', 'sql/metrics': 'Database', 'zookeeper/metrics': 'Database',
  etw: 'ETW', filestream: 'File', logfile: 'File', 'linux/metrics': 'File', 'system/metrics': 'File', 'gcp-pubsub': 'GCP Pub/Sub',
  gcs: 'Google Cloud Storage', 'activemq/metrics': 'Jolokia', 'jolokia/metrics': 'Jolokia', 'kafka/metrics': 'Jolokia', kafka: 'Kafka',
  lumberjack: 'Lumberjack', netflow: 'NetFlow', syslog: 'Network Protocol', tcp: 'Network Protocol', udp: 'Network Protocol',
  'statsd/metrics': 'Network Protocol', 'prometheus/metrics': 'Prometheus', http_endpoint: 'Webhook',
  'iis/metrics': 'Windows Performance Counters', journald: 'journald',
};

/** The ingestion_method table of epr-api.md: input type -> method. */
function docTable(text: string): Map<string, string> {
  const start = text.indexOf('| ingestion_method | input types |');
  const out = new Map<string, string>();
  for (const line of text.slice(start).split('\n').slice(2)) {
    if (!line.trim().startsWith('|')) break;
    const [method, inputs] = line.split('|').slice(1, -1).map((c) => c.trim());
    for (const i of inputs.split(',').map((s) => s.trim())) out.set(i, method);
  }
  return out;
}

function docs(manifest: Record<string, unknown>, opts: { assets?: string[]; dataStreams?: DataStreamManifest[] } = {}) {
  return buildPackageDocuments({
    manifest: { format_version: '3.0.0', name: 'p', title: 'P', version: '1.0.0', description: 'd', ...manifest } as ConfigMap,
    dataStreams: opts.dataStreams ?? [],
    assets: opts.assets ?? ['manifest.yml', 'docs/README.md'],
    hasReadme: true,
    hasSignature: false,
  });
}

const templates = (info: JsonObject) => info.policy_templates as JsonObject[];

describe('ingestion_method: EPR\'s table (server/packages/ingestion.ts)', () => {
  for (const [input, method] of Object.entries(TABLE)) it(`${input}: ${method}`, () => expect(ingestionMethod(input)).to.equal(method));

  it('the table has exactly these inputs', () => {
    expect(Object.fromEntries(ingestionTable())).to.deep.equal(TABLE);
  });

  it('matches the table in ../shared/docs/epr-api.md', function () {
    if (!fs.existsSync(EPR_API)) this.skip();
    expect(Object.fromEntries(docTable(fs.readFileSync(EPR_API, 'utf8')))).to.deep.equal(TABLE);
  });

  it('inputs not in the table get no method: other */metrics inputs, log, packet, unknown ones', () => {
    for (const input of ['log', 'winlog/metrics', 'oracle/metrics', 'mssql/metrics', 'cloudfoundry', 'cloudfoundry/metrics', 'packet', 'unix',
      'awscloudwatch', 'ceph/metrics', 'traefik/metrics', 'apm', 'Prometheus/metrics', 'tcp ', '', 'metrics', '/metrics']) {
      expect(ingestionMethod(input), input).to.equal(undefined);
    }
    expect(ingestionMethod(undefined)).to.equal(undefined);
  });

  it('in package info: set on streams and input policy templates from their input, absent where the table has none', () => {
    const ds = (dir: string, input: string): DataStreamManifest => ({ dir, hasDefaultPipeline: false, manifest: { title: dir, type: 'metrics', streams: [{ input, title: 't' }] } as ConfigMap });
    const { info } = docs({}, { dataStreams: [ds('jmx', 'jolokia/metrics'), ds('ceph', 'ceph/metrics'), ds('hook', 'http_endpoint')] });
    const streams = (info.data_streams as JsonObject[]).map((d) => (d.streams as JsonObject[])[0]);
    expect(streams[0].ingestion_method).to.equal('Jolokia');
    expect(streams[1]).to.not.have.property('ingestion_method');
    expect(streams[2].ingestion_method).to.equal('Webhook');

    const input = docs({ type: 'input', policy_templates: [
      { name: 'a', title: 'A', description: 'a', type: 'logs', input: 'aws-s3', template_path: 'input.yml.hbs' },
      { name: 'b', title: 'B', description: 'b', type: 'metrics', input: 'oracle/metrics', template_path: 'input.yml.hbs' },
    ] }).info;
    expect(templates(input)[0].ingestion_method).to.equal('AWS S3');
    expect(templates(input)[1]).to.not.have.property('ingestion_method');
  });
});

describe("a policy template's readme (server/packages/manifest.ts)", () => {
  const pts = [{ name: 'ec2', title: 'EC2', description: 'e' }, { name: 'rds', title: 'RDS', description: 'r' }];

  it('is /package/{n}/{v}/docs/{template}.md when the package has that file', () => {
    const { info, summary } = docs({ policy_templates: pts }, { assets: ['manifest.yml', 'docs/README.md', 'docs/ec2.md'] });
    expect(templates(info)[0].readme).to.equal('/package/p/1.0.0/docs/ec2.md');
    expect(templates(info)[1]).to.not.have.property('readme');
    // the search summary carries no readme
    expect(templates(summary)[0]).to.not.have.property('readme');
  });

  it('is absent without the file, also when a file of another case or folder has the name', () => {
    const { info } = docs({ policy_templates: pts }, { assets: ['docs/README.md', 'docs/EC2.md', 'docs/x/ec2.md', 'ec2.md', 'docs/rds.md.txt'] });
    for (const t of templates(info)) expect(t).to.not.have.property('readme');
  });

  it('a template name is joined as EPR joins it: nothing outside the package', () => {
    expect(policyTemplateReadme('ec2')).to.equal('docs/ec2.md');
    expect(policyTemplateReadme('a/b')).to.equal('docs/a/b.md');
    expect(policyTemplateReadme('../manifest')).to.equal('manifest.md');
    expect(policyTemplateReadme('../../etc/passwd')).to.equal(undefined);
    const { info } = docs({ policy_templates: [{ name: '../../x', title: 'X', description: 'x' }] }, { assets: ['../x.md', 'docs/README.md'] });
    expect(templates(info)[0]).to.not.have.property('readme');
  });
});

describe('icon and screenshot paths', () => {
  it('src stays as the manifest writes it; path is joined onto the package path as Go joins it', () => {
    const { info, summary } = docs({
      icons: [{ src: '/img//logo.svg', type: 'image/svg+xml' }, { src: '/img/plain.svg' }],
      screenshots: [{ src: '/img/./shot.png', title: 's' }],
      policy_templates: [{ name: 't', title: 'T', description: 't', icons: [{ src: '/img//t.svg' }] }],
    });
    const icons = info.icons as JsonObject[];
    expect(icons.map((i) => [i.src, i.path])).to.deep.equal([['/img//logo.svg', '/package/p/1.0.0/img/logo.svg'], ['/img/plain.svg', '/package/p/1.0.0/img/plain.svg']]);
    expect((summary.icons as JsonObject[])[0].src).to.equal('/img//logo.svg');
    expect((info.screenshots as JsonObject[])[0]).to.include({ src: '/img/./shot.png', path: '/package/p/1.0.0/img/shot.png' });
    expect(((templates(info)[0].icons as JsonObject[])[0])).to.include({ src: '/img//t.svg', path: '/package/p/1.0.0/img/t.svg' });
  });
});
