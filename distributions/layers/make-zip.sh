#!/usr/bin/env bash
# Rebuilds a zip package of the sample layers from its source folder and checks
# (or renews) its detached signature.
#
#   make-zip.sh [--new-key] [SOURCE_DIR [LAYER_DIR]]
#
# SOURCE_DIR  a package folder <name>/<version>/ (default:
#             distributions/zip-sources/apache_httpd/1.3.0). The sources live
#             outside the layer folders on purpose: the server scans layer
#             folders recursively and would serve them as a second copy.
# LAYER_DIR   where <name>-<version>.zip goes (default: layers/production).
#
# The zip is reproducible: one top folder <name>-<version>/, directory entries
# first for each level, files in sorted order, a fixed timestamp
# (2020-01-01 00:00:00) and fixed permissions. Rebuilding unchanged sources
# gives the same bytes, so the committed .sig stays valid; the script checks
# that against sample-signing-key.asc.
#
# --new-key   generates a new throwaway ed25519 key in a temporary GNUPGHOME,
#             signs the zip (ASCII-armored detached signature, <zip>.sig),
#             overwrites sample-signing-key.asc with the new public key and
#             deletes the private key. Use it after changing the sources.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
new_key=false
if [[ "${1:-}" == "--new-key" ]]; then new_key=true; shift; fi
src="$(cd "${1:-$here/../zip-sources/apache_httpd/1.3.0}" && pwd)"
out_dir="$(cd "${2:-$here/production}" && pwd)"
key_file="$here/sample-signing-key.asc"

version="$(basename "$src")"
name="$(basename "$(dirname "$src")")"
zip="$out_dir/$name-$version.zip"

python3 - "$src" "$zip" "$name-$version" <<'PY'
import os, sys, zipfile
src, out, top = sys.argv[1], sys.argv[2], sys.argv[3]
STAMP = (2020, 1, 1, 0, 0, 0)

def entry(name, is_dir):
    info = zipfile.ZipInfo(name, date_time=STAMP)
    info.create_system = 3  # unix, so external_attr holds the mode
    info.external_attr = ((0o40755 if is_dir else 0o100644) << 16) | (0x10 if is_dir else 0)
    info.compress_type = zipfile.ZIP_STORED if is_dir else zipfile.ZIP_DEFLATED
    return info

tmp = out + '.tmp'
with zipfile.ZipFile(tmp, 'w') as z:
    z.writestr(entry(top + '/', True), b'')
    for root, dirs, files in os.walk(src):
        dirs.sort()
        rel = os.path.relpath(root, src)
        prefix = top + '/' + ('' if rel == '.' else rel.replace(os.sep, '/') + '/')
        for d in dirs:
            z.writestr(entry(prefix + d + '/', True), b'')
        for f in sorted(files):
            with open(os.path.join(root, f), 'rb') as fh:
                z.writestr(entry(prefix + f, False), fh.read(), compresslevel=9)
os.replace(tmp, out)
print(f'wrote {out} ({os.path.getsize(out)} bytes)')
PY

gnupghome="$(mktemp -d)"
trap 'rm -rf "$gnupghome"' EXIT
export GNUPGHOME="$gnupghome"
if $new_key; then
  gpg --batch --quiet --passphrase '' --quick-gen-key 'EPR sample signing key <samples@example.invalid>' ed25519 sign never
  gpg --batch --yes --armor --detach-sign --output "$zip.sig" "$zip"
  gpg --armor --export 'samples@example.invalid' > "$key_file"
  echo "signed $zip; public key written to $key_file (the private key is discarded)"
fi
gpg --batch --quiet --import "$key_file"
if gpg --batch --verify "$zip.sig" "$zip"; then
  echo "signature OK: $zip.sig"
else
  echo "signature of $zip does not match; rerun with --new-key after changing the sources" >&2
  exit 1
fi
