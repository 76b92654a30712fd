/**
 * How an input gets its data, as Fleet shows it next to a data stream's
 * stream or an input policy template: EPR's table, exactly. An input type
 * that is not in it (including other `<service>/metrics` inputs and `log`)
 * gets no ingestion method at all.
 */
const METHODS: Record<string, string[]> = {
  API: [
    'cel', 'entity-analytics', 'httpjson', 'o365audit', 'salesforce', 'streaming', 'websocket', 'winlog',
    'apache/metrics', 'aws/metrics', 'awsfargate/metrics', 'azure/metrics', 'containerd/metrics', 'docker/metrics',
    'elasticsearch/metrics', 'enterprisesearch/metrics', 'etcd/metrics', 'gcp/metrics', 'haproxy/metrics',
    'http/metrics', 'kibana/metrics', 'kubernetes/metrics', 'logstash/metrics', 'meraki/metrics', 'nats/metrics',
    'nginx/metrics', 'panw/metrics', 'rabbitmq/metrics', 'stan/metrics', 'vsphere/metrics', 'windows/metrics',
  ],
  'AWS CloudWatch': ['aws-cloudwatch'],
  'AWS S3': ['aws-s3'],
  'Azure Blob Storage': ['azure-blob-storage'],
  'Azure Event Hub': ['azure-eventhub'],
  Database: ['memcached/metrics', 'mongodb/metrics', 'mysql/metrics', 'postgresql/metrics', 'redis', 'redis/metrics', 'sql/metrics', 'zookeeper/metrics'],
  ETW: ['etw'],
  File: ['filestream', 'logfile', 'linux/metrics', 'system/metrics'],
  'GCP Pub/Sub': ['gcp-pubsub'],
  'Google Cloud Storage': ['gcs'],
  Jolokia: ['activemq/metrics', 'jolokia/metrics', 'kafka/metrics'],
  Kafka: ['kafka'],
  Lumberjack: ['lumberjack'],
  NetFlow: ['netflow'],
  'Network Protocol': ['syslog', 'tcp', 'udp', 'statsd/metrics'],
  Prometheus: ['prometheus/metrics'],
  Webhook: ['http_endpoint'],
  'Windows Performance Counters': ['iis/metrics'],
  journald: ['journald'],
};

const BY_INPUT = new Map<string, string>(Object.entries(METHODS).flatMap(([method, inputs]) => inputs.map((i) => [i, method] as [string, string])));

/** The ingestion method of an input type, or undefined (no field) when EPR's table has none for it. */
export function ingestionMethod(input: string | undefined): string | undefined {
  return input === undefined ? undefined : BY_INPUT.get(input);
}

/** Every input type the table knows, with its method (for tests and docs). */
export function ingestionTable(): ReadonlyMap<string, string> {
  return BY_INPUT;
}
