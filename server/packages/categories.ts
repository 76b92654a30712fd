/**
 * The fixed category list of the Elastic Package Registry: id, title and the
 * parent for subcategories. Package categories outside this list are dropped;
 * policy-template categories are kept and titled by their id.
 */
export interface CategoryDef { title: string; parent?: string }

const security = 'security';
const observability = 'observability';
const search = 'enterprise_search';

export const CATEGORIES: Readonly<Record<string, CategoryDef>> = {
  advanced_analytics_ueba: { title: 'Advanced Analytics (UEBA)', parent: security },
  analytics_engine: { title: 'Analytics Engine', parent: security },
  application_observability: { title: 'Application Observability', parent: observability },
  app_search: { title: 'Application Search', parent: search },
  auditd: { title: 'Auditd', parent: security },
  authentication: { title: 'Authentication', parent: security },
  aws: { title: 'AWS' },
  azure: { title: 'Azure' },
  big_data: { title: 'Big Data' },
  cdn_security: { title: 'CDN Security', parent: security },
  cloud: { title: 'Cloud' },
  cloudsecurity_cdr: { title: 'Cloud Security', parent: security },
  config_management: { title: 'Config management' },
  connector: { title: 'Connector', parent: search },
  connector_client: { title: 'Connector Client', parent: search },
  connector_package: { title: 'Connector Package', parent: search },
  containers: { title: 'Containers' },
  content_source: { title: 'Content Source', parent: search },
  crawler: { title: 'Crawler', parent: search },
  credential_management: { title: 'Credential Management', parent: security },
  crm: { title: 'CRM' },
  custom: { title: 'Custom' },
  custom_logs: { title: 'Custom Logs', parent: 'custom' },
  database_security: { title: 'Database Security', parent: security },
  datastore: { title: 'Database' },
  dns_security: { title: 'DNS Security', parent: security },
  edr_xdr: { title: 'EDR/XDR', parent: security },
  elastic_stack: { title: 'Elastic Stack' },
  elasticsearch_sdk: { title: 'Elasticsearch SDK', parent: search },
  email_security: { title: 'Email Security', parent: security },
  enterprise_search: { title: 'Search' },
  firewall_security: { title: 'Firewall Security', parent: security },
  google_cloud: { title: 'Google Cloud' },
  iam: { title: 'Identity and Access Management', parent: security },
  ids_ips: { title: 'IDS/IPS', parent: security },
  infrastructure: { title: 'Infrastructure', parent: observability },
  java_observability: { title: 'Java Monitoring', parent: observability },
  kubernetes: { title: 'Kubernetes' },
  language_client: { title: 'Language Client', parent: search },
  languages: { title: 'Languages' },
  load_balancer: { title: 'Load Balancer' },
  message_queue: { title: 'Message Broker', parent: observability },
  monitoring: { title: 'Monitoring', parent: observability },
  native_search: { title: 'Native Search', parent: search },
  network: { title: 'Network' },
  network_security: { title: 'Network Security', parent: security },
  notification: { title: 'Notification' },
  observability: { title: 'Observability' },
  os_system: { title: 'OS & System' },
  process_manager: { title: 'Process Manager' },
  productivity: { title: 'Productivity' },
  productivity_security: { title: 'Productivity Security', parent: security },
  proxy_security: { title: 'Proxy Security', parent: security },
  sdk_search: { title: 'SDK Search', parent: search },
  security: { title: 'Security' },
  siem: { title: 'SIEM', parent: security },
  stream_processing: { title: 'Stream Processing' },
  support: { title: 'Support' },
  threat_intel: { title: 'Threat Intelligence', parent: security },
  ticketing: { title: 'Ticketing' },
  version_control: { title: 'Version Control' },
  virtualization: { title: 'Virtualization' },
  vpn_security: { title: 'VPN Security', parent: security },
  vulnerability_management: { title: 'Vulnerability Management', parent: security },
  web: { title: 'Web Server', parent: observability },
  web_application_firewall: { title: 'Web Application Firewall', parent: security },
  websphere: { title: 'WebSphere', parent: observability },
  workplace_search: { title: 'Workplace Search', parent: search },
};

export function isKnownCategory(id: string): boolean {
  return Object.prototype.hasOwnProperty.call(CATEGORIES, id);
}

/** A category matches a query for itself, and a parent query matches its subcategories. */
export function categoryMatches(categoryId: string, query: string): boolean {
  if (categoryId === query) return true;
  return isKnownCategory(categoryId) && CATEGORIES[categoryId].parent === query;
}
