import zlib from 'node:zlib';

/**
 * A small synchronous zip writer for the corpus generator, shaped like the
 * zips elastic-package makes: a directory entry before each folder's first
 * file, every file deflated, fixed times. The compressed bytes of a content
 * are made once and kept (by Buffer identity), so successive versions of a
 * package share their entries byte for byte, as the real ones do: only the
 * names inside (which carry `<name>-<version>/`) differ.
 */
export class ZipWriter {
  private readonly compressed = new WeakMap<Buffer, { crc: number; data: Buffer }>();

  /** `files` in the order they go in, paths relative to the package; returns the zip's bytes. */
  zip(topFolder: string, files: Array<[string, Buffer]>): Buffer {
    const parts: Buffer[] = [];
    const central: Buffer[] = [];
    let offset = 0;
    const seen = new Set<string>();
    const add = (name: string, content: Buffer | undefined) => {
      const nameBytes = Buffer.from(name, 'utf8');
      const entry = content ? this.deflated(content) : { crc: 0, data: Buffer.alloc(0) };
      const method = content ? 8 : 0;
      const local = Buffer.alloc(30);
      local.writeUInt32LE(0x04034b50, 0);
      local.writeUInt16LE(20, 4); // version needed
      local.writeUInt16LE(0x0800, 6); // UTF-8 names
      local.writeUInt16LE(method, 8);
      local.writeUInt16LE(DOS_TIME, 10);
      local.writeUInt16LE(DOS_DATE, 12);
      local.writeUInt32LE(entry.crc, 14);
      local.writeUInt32LE(entry.data.length, 18);
      local.writeUInt32LE(content?.length ?? 0, 22);
      local.writeUInt16LE(nameBytes.length, 26);
      local.writeUInt16LE(0, 28);
      parts.push(local, nameBytes, entry.data);
      const cd = Buffer.alloc(46);
      cd.writeUInt32LE(0x02014b50, 0);
      cd.writeUInt16LE(0x0314, 4); // made by: unix, 2.0
      cd.writeUInt16LE(20, 6);
      cd.writeUInt16LE(0x0800, 8);
      cd.writeUInt16LE(method, 10);
      cd.writeUInt16LE(DOS_TIME, 12);
      cd.writeUInt16LE(DOS_DATE, 14);
      cd.writeUInt32LE(entry.crc, 16);
      cd.writeUInt32LE(entry.data.length, 20);
      cd.writeUInt32LE(content?.length ?? 0, 24);
      cd.writeUInt16LE(nameBytes.length, 28);
      cd.writeUInt16LE(0, 30); // extra
      cd.writeUInt16LE(0, 32); // comment
      cd.writeUInt16LE(0, 34); // disk
      cd.writeUInt16LE(0, 36); // internal attributes
      cd.writeUInt32LE(((content ? 0o100644 : 0o40755) << 16) >>> 0, 38);
      cd.writeUInt32LE(offset, 42);
      central.push(cd, nameBytes);
      offset += local.length + nameBytes.length + entry.data.length;
    };
    add(`${topFolder}/`, undefined);
    for (const [rel, content] of files) {
      const segments = rel.split('/');
      for (let i = 1; i < segments.length; i++) {
        const dir = segments.slice(0, i).join('/');
        if (!seen.has(dir)) { seen.add(dir); add(`${topFolder}/${dir}/`, undefined); }
      }
      add(`${topFolder}/${rel}`, content);
    }
    const cdBytes = Buffer.concat(central);
    const end = Buffer.alloc(22);
    end.writeUInt32LE(0x06054b50, 0);
    const count = central.length / 2;
    end.writeUInt16LE(count, 8);
    end.writeUInt16LE(count, 10);
    end.writeUInt32LE(cdBytes.length, 12);
    end.writeUInt32LE(offset, 16);
    return Buffer.concat([...parts, cdBytes, end]);
  }

  private deflated(content: Buffer): { crc: number; data: Buffer } {
    let e = this.compressed.get(content);
    if (!e) {
      e = { crc: zlib.crc32(content), data: zlib.deflateRawSync(content, { level: 6 }) };
      this.compressed.set(content, e);
    }
    return e;
  }
}

// 2020-01-01 00:00:00 in MS-DOS form
const DOS_TIME = 0;
const DOS_DATE = ((2020 - 1980) << 9) | (1 << 5) | 1;
