import crypto from 'node:crypto';
import type { Readable } from 'node:stream';

/**
 * The image model every writer takes (after go-containerregistry's v1):
 * an image is a config, a manifest and layers, each a content-addressed blob
 * named by a descriptor. Where an image lives (the builder's store, a
 * registry, a bundle, an engine) is the business of one writer or reader
 * each; none of them knows how the image was made.
 */

export const MEDIA_TYPES = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociLayerTar: 'application/vnd.oci.image.layer.v1.tar',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

/** The annotation naming a tag in an OCI layout's index.json. */
export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

export interface Descriptor {
  mediaType: string;
  /** sha256:<hex> of the blob's exact bytes */
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string; variant?: string };
}

/** A layer: its blob (as stored and sent, usually gzip) and the sha256 of its uncompressed tar. */
export interface LayerDescriptor extends Descriptor {
  diffId: string;
}

/** An image as a writer sees it: the exact manifest and config bytes and the layers they name. */
export interface OciImage {
  /** the manifest's exact bytes; its sha256 is the image's digest in a registry */
  manifest: Buffer;
  manifestDescriptor: Descriptor;
  /** the config's exact bytes; its sha256 is the image ID an engine gives it */
  config: Buffer;
  configDescriptor: Descriptor;
  /** bottom first */
  layers: LayerDescriptor[];
}

/** Where a writer reads blobs from (the builder's store, a bundle being read, a registry). */
export interface BlobSource {
  has(digest: string): boolean;
  /** the blob's bytes; fails when it is not there */
  open(digest: string): Readable;
}

/** Where a reader puts blobs (the builder's store). */
export interface BlobSink {
  has(digest: string): boolean;
  /** writes the blob, checking its digest and size; a bad or short blob leaves nothing behind */
  write(desc: Descriptor, body: Readable): Promise<void>;
}

/** What every writer reports: how many blobs and bytes it sent, and how many it found there already. */
export interface TransferReport {
  blobsSent: number;
  bytesSent: number;
  blobsPresent: number;
  bytesPresent: number;
  /** blobs the target got by a cross-repository mount (a registry) */
  blobsMounted?: number;
}

export function emptyReport(): TransferReport {
  return { blobsSent: 0, bytesSent: 0, blobsPresent: 0, bytesPresent: 0 };
}

export function isDigest(s: string): boolean {
  return /^sha256:[0-9a-f]{64}$/.test(s);
}

/** The hex part of a sha256 digest (throws on anything else: a digest names a file path). */
export function digestHex(digest: string): string {
  if (!isDigest(digest)) throw new Error(`not a sha256 digest: ${digest}`);
  return digest.slice(7);
}

/** Reads manifest and config JSON back into an OciImage (a bundle, a registry's answer). */
export function imageFromManifest(manifest: Buffer, config: Buffer): OciImage {
  const m = JSON.parse(manifest.toString('utf8')) as { mediaType?: string; config: Descriptor; layers: Descriptor[] };
  const c = JSON.parse(config.toString('utf8')) as { rootfs?: { diff_ids?: string[] } };
  const diffIds = c.rootfs?.diff_ids ?? [];
  if (diffIds.length !== m.layers.length) throw new Error(`the image config lists ${diffIds.length} layers, the manifest ${m.layers.length}`);
  return {
    manifest,
    manifestDescriptor: { mediaType: m.mediaType ?? MEDIA_TYPES.ociManifest, digest: sha256Digest(manifest), size: manifest.length },
    config,
    configDescriptor: { ...m.config, size: config.length },
    layers: m.layers.map((l, i) => ({ ...l, diffId: diffIds[i] })),
  };
}

export function sha256Digest(bytes: Buffer | string): string {
  return `sha256:${crypto.createHash('sha256').update(bytes).digest('hex')}`;
}
