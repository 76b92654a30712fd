/**
 * Blobs for the OCI registry tests without the builder's store: a folder of
 * content-addressed files that is both a BlobSource and a BlobSink, and
 * images made of random gzipped layer tars, a config and a manifest.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import { Transform, type Readable } from 'node:stream';
import tarStream from 'tar-stream';
import { MEDIA_TYPES, digestHex, imageFromManifest, sha256Digest, type BlobSink, type BlobSource, type Descriptor, type OciImage } from '../../builder/oci/model.js';

export class DirBlobs implements BlobSource, BlobSink {
  /** digests written through write(), in order (what a pull fetched) */
  readonly written: string[] = [];

  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true });
  }

  file(digest: string): string {
    return path.join(this.dir, digestHex(digest));
  }

  has(digest: string): boolean {
    return fs.existsSync(this.file(digest));
  }

  open(digest: string): Readable {
    if (!this.has(digest)) throw new Error(`no blob ${digest} in ${this.dir}`);
    return fs.createReadStream(this.file(digest));
  }

  read(digest: string): Buffer {
    return fs.readFileSync(this.file(digest));
  }

  put(bytes: Buffer): string {
    const digest = sha256Digest(bytes);
    fs.writeFileSync(this.file(digest), bytes);
    return digest;
  }

  async write(desc: Descriptor, body: Readable): Promise<void> {
    const tmp = `${this.file(desc.digest)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
    const hash = crypto.createHash('sha256');
    let size = 0;
    const count = new Transform({
      transform(chunk: Buffer, _e, cb) {
        hash.update(chunk);
        size += chunk.length;
        cb(null, chunk);
      },
    });
    try {
      await pipeline(body, count, fs.createWriteStream(tmp));
      const got = `sha256:${hash.digest('hex')}`;
      if (got !== desc.digest || size !== desc.size) throw new Error(`blob ${desc.digest}: got ${got}, ${size} bytes`);
      fs.renameSync(tmp, this.file(desc.digest));
      this.written.push(desc.digest);
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      throw err;
    }
  }
}

/** A gzipped tar holding one file of random bytes: its blob goes into `blobs`. */
export async function randomLayer(blobs: DirBlobs, bytes: number, name = 'data.bin'): Promise<{ digest: string; size: number; diffId: string }> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    pack.on('data', (c: unknown) => void chunks.push(c as Buffer));
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  pack.entry({ name, size: bytes, mtime: new Date(0), mode: 0o644 }, crypto.randomBytes(bytes));
  pack.finalize();
  await done;
  const tar = Buffer.concat(chunks);
  const gz = zlib.gzipSync(tar, { level: 1 });
  return { digest: blobs.put(gz), size: gz.length, diffId: sha256Digest(tar) };
}

export interface ImageSpec {
  /** layer sizes before compression (random bytes: the gzip is about as large) */
  layerBytes: number[];
  /** layers to put below the new ones (a shared base) */
  base?: OciImage;
  mediaType?: 'oci' | 'docker';
}

/** An image whose blobs are all in `blobs` (the manifest too, as a layout would hold it). */
export async function randomImage(blobs: DirBlobs, spec: ImageSpec): Promise<OciImage> {
  const layers = [...(spec.base?.layers ?? [])];
  for (const [i, n] of spec.layerBytes.entries()) layers.push({ mediaType: '', ...(await randomLayer(blobs, n, `layer-${i}.bin`)) });
  const docker = spec.mediaType === 'docker';
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: '1970-01-01T00:00:00Z',
      config: { Labels: { made: crypto.randomBytes(4).toString('hex') } },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    }),
  );
  const configDigest = blobs.put(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: docker ? MEDIA_TYPES.dockerManifest : MEDIA_TYPES.ociManifest,
      config: { mediaType: docker ? MEDIA_TYPES.dockerConfig : MEDIA_TYPES.ociConfig, digest: configDigest, size: config.length },
      layers: layers.map((l) => ({ mediaType: docker ? MEDIA_TYPES.dockerLayerGzip : MEDIA_TYPES.ociLayerGzip, digest: l.digest, size: l.size })),
    }),
  );
  blobs.put(manifest);
  return imageFromManifest(manifest, config);
}
