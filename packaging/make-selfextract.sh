#!/usr/bin/env bash
# Make a self-extracting single file from a one-folder build: packaging/selfextract-stub.sh
# followed by a gzipped tar of the folder (which must hold an executable named botctl).
# Usage: packaging/make-selfextract.sh FOLDER VERSION OUTPUT
# The cache folder's name is VERSION-<first 12 hex of the payload's sha256>, so a rebuild with
# any change unpacks afresh and an unchanged one reuses what is unpacked.
set -euo pipefail
folder=$1 version=$2 output=$3
stub="$(dirname "$0")/selfextract-stub.sh"
[ -x "$folder/botctl" ] || { echo "make-selfextract: $folder/botctl is not an executable" >&2; exit 2; }
case $version in
  *[!A-Za-z0-9._+-]*|"") echo "make-selfextract: bad version '$version'" >&2; exit 2 ;;
esac

payload="$(mktemp)"
trap 'rm -f "$payload" "$output.tmp"' EXIT
# Fixed owner, order and times: the same folder gives the same payload, hence the same hash.
tar -C "$folder" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf - . \
  | gzip -n -6 >"$payload"
hash=$(sha256sum "$payload" | cut -c1-12)

# The offset placeholder is padded to its own width, so the stub's length does not change.
header=$(sed "s/@PAYLOAD_ID@/$version-$hash/" "$stub")
length=$(( $(printf '%s\n' "$header" | wc -c) ))
offset=$(printf '%-16s' "$((length + 1))")
printf '%s\n' "${header/@PAYLOAD_OFFSET@/$offset}" >"$output.tmp"
[ "$(wc -c <"$output.tmp")" -eq "$length" ] || { echo "make-selfextract: stub length changed" >&2; exit 1; }
cat "$payload" >>"$output.tmp"
chmod 755 "$output.tmp"
mv -f "$output.tmp" "$output"
