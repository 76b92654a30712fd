import type { ZipArchive } from './zip-recipe.js';

/**
 * The records at a zip's end that say what it holds: the end-of-central-
 * directory record (with its zip64 successor) and the central directory
 * records (with the zip64 extra field). They are read here only; what to make
 * of an unusual zip is the caller's: the server leaves such zips to yauzl
 * (source.ts), the builder stores fewer of their entries (builder/zip-recipe.ts).
 */

const END_SIGNATURE = 0x06054b50;
const ZIP64_LOCATOR_SIGNATURE = 0x07064b50;
const ZIP64_END_SIGNATURE = 0x06064b50;
const DIRECTORY_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;
const END_LENGTH = 22;
const DIRECTORY_RECORD_LENGTH = 46;
export const LOCAL_HEADER_LENGTH = 30;
const U16 = 0xffff;
const U32 = 0xffffffff;

/** The extra field that holds the 64-bit values of fields reading 0xffffffff. */
export const ZIP64_EXTRA = 0x0001;
/** The Info-ZIP unicode path extra field: a name other than the record's own. */
export const UNICODE_PATH_EXTRA = 0x7075;

export interface EndRecord {
  /** where the end-of-central-directory record starts in the zip */
  offset: number;
  /**
   * No end signature follows this record. It is the last one whose comment
   * runs exactly to the end of the zip; yauzl takes the very last signature
   * and refuses the zip when that one's comment does not.
   */
  last: boolean;
  /** this disk's number, the disk the directory starts on, and the entries on this disk (the 32-bit record's) */
  disk: number;
  directoryDisk: number;
  diskEntries: number;
  /** entries, size and offset of the central directory: the zip64 end record's when `zip64` */
  entries: number;
  directorySize: number;
  directoryOffset: number;
  /** a count, size or offset of the record read 0xffff(ffff): the values are the zip64 end record's */
  zip64: boolean;
}

/** The zip's end record; undefined when there is none, or it points at a zip64 end record that is not there. */
export function readEndRecord(a: ZipArchive): EndRecord | undefined {
  const size = a.size;
  if (size < END_LENGTH) return undefined;
  const tailLength = Math.min(size, END_LENGTH + U16);
  const tailStart = size - tailLength;
  const tail = a.readSync(tailStart, tailLength);
  let at = -1;
  let last = true;
  for (let i = tail.length - END_LENGTH; i >= 0; i--) {
    if (tail.readUInt32LE(i) !== END_SIGNATURE) continue;
    if (i + END_LENGTH + tail.readUInt16LE(i + 20) === tail.length) { at = i; break; }
    last = false;
  }
  if (at < 0) return undefined;
  const end: EndRecord = {
    offset: tailStart + at,
    last,
    disk: tail.readUInt16LE(at + 4),
    directoryDisk: tail.readUInt16LE(at + 6),
    diskEntries: tail.readUInt16LE(at + 8),
    entries: tail.readUInt16LE(at + 10),
    directorySize: tail.readUInt32LE(at + 12),
    directoryOffset: tail.readUInt32LE(at + 16),
    zip64: false,
  };
  if (end.entries !== U16 && end.directorySize !== U32 && end.directoryOffset !== U32) return end;
  const locator = end.offset - 20;
  if (locator < 0) return undefined;
  const loc = a.readSync(locator, 20);
  if (loc.readUInt32LE(0) !== ZIP64_LOCATOR_SIGNATURE) return undefined;
  const z64 = a.readSync(Number(loc.readBigUInt64LE(8)), 56);
  if (z64.readUInt32LE(0) !== ZIP64_END_SIGNATURE) return undefined;
  return {
    ...end,
    entries: Number(z64.readBigUInt64LE(32)),
    directorySize: Number(z64.readBigUInt64LE(40)),
    directoryOffset: Number(z64.readBigUInt64LE(48)),
    zip64: true,
  };
}

export interface DirectoryRecord {
  flags: number;
  method: number;
  /** sizes and the local header's offset: the zip64 extra field's where the record's own read 0xffffffff */
  compressedSize: number;
  uncompressedSize: number;
  localHeader: number;
  /** one of the three read 0xffffffff */
  zip64: boolean;
  /** the name's bytes, as stored */
  name: Buffer;
  /** the ids of the extra fields, in order */
  extraIds: number[];
  /** where the record ends in the directory, past its name, extra field and comment (beyond the directory when it is cut short) */
  end: number;
}

/**
 * The central directory's records, at most `entries` of them, until one is
 * cut short before its name or lacks its signature. A caller that needs all
 * `entries` counts them; one that needs whole records checks `end`. Reading
 * an extra field past the directory throws.
 */
export function* directoryRecords(cd: Buffer, entries: number): Generator<DirectoryRecord> {
  let at = 0;
  for (let i = 0; i < entries && at + DIRECTORY_RECORD_LENGTH <= cd.length; i++) {
    if (cd.readUInt32LE(at) !== DIRECTORY_SIGNATURE) return;
    const compressed32 = cd.readUInt32LE(at + 20);
    const uncompressed32 = cd.readUInt32LE(at + 24);
    const nameLength = cd.readUInt16LE(at + 28);
    const extraLength = cd.readUInt16LE(at + 30);
    const commentLength = cd.readUInt16LE(at + 32);
    const local32 = cd.readUInt32LE(at + 42);
    const record: DirectoryRecord = {
      flags: cd.readUInt16LE(at + 8),
      method: cd.readUInt16LE(at + 10),
      compressedSize: compressed32,
      uncompressedSize: uncompressed32,
      localHeader: local32,
      zip64: compressed32 === U32 || uncompressed32 === U32 || local32 === U32,
      name: cd.subarray(at + DIRECTORY_RECORD_LENGTH, at + DIRECTORY_RECORD_LENGTH + nameLength),
      extraIds: [],
      end: at + DIRECTORY_RECORD_LENGTH + nameLength + extraLength + commentLength,
    };
    const extraEnd = at + DIRECTORY_RECORD_LENGTH + nameLength + extraLength;
    for (let x = at + DIRECTORY_RECORD_LENGTH + nameLength; x + 4 <= extraEnd;) {
      const id = cd.readUInt16LE(x);
      record.extraIds.push(id);
      if (id === ZIP64_EXTRA) {
        // the 64-bit values of the fields that read 0xffffffff, in order: uncompressed, compressed, offset
        // (read where the field says, even past its stated length; a value the directory cannot hold throws, but
        // for the uncompressed size, which no caller needs from a zip64 record: it stays 0xffffffff)
        let f = x + 4;
        if (uncompressed32 === U32) {
          if (record.uncompressedSize === U32 && f + 8 <= cd.length) record.uncompressedSize = Number(cd.readBigUInt64LE(f));
          f += 8;
        }
        if (record.compressedSize === U32) { record.compressedSize = Number(cd.readBigUInt64LE(f)); f += 8; }
        if (record.localHeader === U32) record.localHeader = Number(cd.readBigUInt64LE(f));
      }
      x += 4 + cd.readUInt16LE(x + 2);
    }
    yield record;
    at = record.end;
  }
}

/** Where an entry's data begins, past its local header's name and extra field; undefined when no local header is at `localHeader`. */
export function localDataStart(a: ZipArchive, localHeader: number): number | undefined {
  const head = a.readSync(localHeader, LOCAL_HEADER_LENGTH);
  if (head.readUInt32LE(0) !== LOCAL_SIGNATURE) return undefined;
  return localHeader + LOCAL_HEADER_LENGTH + head.readUInt16LE(26) + head.readUInt16LE(28);
}
