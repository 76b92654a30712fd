/**
 * How an input gets its data, as Fleet shows it next to a stream or an input
 * policy template. Other metric inputs (`<service>/metrics`) poll an API;
 * any other input gets no ingestion method.
 */
const METHODS: Record<string, string[]> = {
  File: ['filestream', 'log', 'logfile', 'journald', 'winlog', 'etw', 'winlog/metrics'],
  'Network Protocol': ['tcp', 'udp', 'syslog', 'netflow', 'lumberjack', 'packet', 'unix', 'http/metrics'],
  Database: ['sql/metrics', 'mysql/metrics', 'postgresql/metrics', 'mongodb/metrics', 'redis/metrics', 'oracle/metrics', 'mssql/metrics'],
  API: [
    'httpjson', 'cel', 'http_endpoint', 'aws-s3', 'aws-cloudwatch', 'awscloudwatch', 'aws/metrics', 'awsfargate/metrics',
    'azure-eventhub', 'azure-blob-storage', 'azure/metrics', 'gcp-pubsub', 'gcs', 'gcp/metrics', 'o365audit',
    'cloudfoundry', 'cloudfoundry/metrics', 'entity-analytics', 'websocket', 'streaming', 'salesforce',
  ],
  Kafka: ['kafka'],
};

const BY_INPUT = new Map<string, string>(Object.entries(METHODS).flatMap(([method, inputs]) => inputs.map((i) => [i, method] as [string, string])));

export function ingestionMethod(input: string | undefined): string | undefined {
  if (!input) return undefined;
  return BY_INPUT.get(input) ?? (input.endsWith('/metrics') ? 'API' : undefined);
}
