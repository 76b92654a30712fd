import type { PackageIndex } from './packages/index.js';
import type { CacheTimes } from './config.js';
import type { Upstream } from './proxy.js';
import type { ResponseCache } from './http/response-cache.js';
import type { ZipCache } from './packages/archive.js';

/** What the routes need: the index being served and the settings that shape answers. */
export interface RegistryContext {
  index: PackageIndex;
  cacheTime: CacheTimes;
  allowUnknownQueryParameters: boolean;
  serviceName: string;
  serviceVersion: string;
  /** set in proxy mode */
  upstream?: Upstream;
  /** ready answers by URL; absent in proxy mode, where answers depend on the upstream */
  answers?: ResponseCache;
  /** zips of directory packages made once; absent: zipped on the fly for every request */
  zips?: ZipCache;
}

/** EPR version this server answers as (Fleet and elastic-package read it from `/`). */
export const SERVICE_VERSION = '1.40.1';
