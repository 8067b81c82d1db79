#!/bin/sh
# botctl single file: this shell stub, then a gzipped tar of the PyInstaller one-folder build.
# The first start of a build unpacks it once into a private per-user cache folder,
# ${XDG_CACHE_HOME:-~/.cache}/botctl/<version>-<hash>/; every later start only execs it.
# The unpack goes to a temporary folder beside it and is renamed into place, so two first starts
# at once, or a start after a crash mid-unpack, never run a half-written tree.
# Made by packaging/make-selfextract.sh; the two values below are filled in there.
payload_id=@PAYLOAD_ID@
payload_offset=@PAYLOAD_OFFSET@

case $0 in
  /*) self=$0 ;;
  *) self=$(pwd)/$0 ;;
esac
# The unit printed by `botctl service unit` must name this file, not the cached copy.
BOTCTL_LAUNCHER=$self
export BOTCTL_LAUNCHER

fail() {
  echo "botctl: $*" >&2
  exit 1
}

# A cache folder that another user could write to (or swap) would let them run code as us.
private_dir() {
  [ -d "$1" ] && [ ! -L "$1" ] && [ -O "$1" ] || return 1
  mode=$(stat -c %a "$1" 2>/dev/null) || return 1
  [ $((0$mode & 022)) -eq 0 ]  # neither group nor others may write
}

unpack_into() {  # folder: extract the payload into it, which must be empty
  tail -c "+$payload_offset" "$self" | tar -xzmf - -C "$1" || return 1
  [ -x "$1/botctl" ]
}

base=
case ${XDG_CACHE_HOME:-} in
  /*) base=$XDG_CACHE_HOME/botctl ;;
  *) case ${HOME:-} in /?*) base=$HOME/.cache/botctl ;; esac ;;
esac
dir=$base/$payload_id

if [ -n "$base" ] && [ -x "$dir/botctl" ] && private_dir "$base"; then
  exec "$dir/botctl" "$@"
fi

umask 077
if [ -n "$base" ]; then
  mkdir -p "$base" 2>/dev/null
fi
if [ -n "$base" ] && private_dir "$base"; then
  if [ ! -x "$dir/botctl" ]; then
    tmp=$(mktemp -d "$base/.unpack.XXXXXXXX") || fail "cannot create a folder in $base"
    if ! unpack_into "$tmp"; then
      rm -rf "$tmp"
      fail "cannot unpack into $base (disk full, or this file is damaged)"
    fi
    # Loses the race quietly when another first start renamed its copy into place first.
    mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
    # Unpacks that a crash or a kill interrupted: nobody renames them any more.
    find "$base" -mindepth 1 -maxdepth 1 -name '.unpack.*' -mmin +60 -exec rm -rf {} + 2>/dev/null
    [ -x "$dir/botctl" ] || fail "cannot unpack into $base"
  fi
  exec "$dir/botctl" "$@"
fi

# No private cache folder to be had: unpack into a private temporary folder for this start only.
if [ -n "$base" ]; then
  echo "botctl: $base is not a private folder of this user; unpacking into a temporary folder" >&2
else
  echo "botctl: no cache folder (neither XDG_CACHE_HOME nor HOME is set); unpacking into a temporary folder" >&2
fi
tmp=$(mktemp -d) || fail "cannot create a temporary folder"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
unpack_into "$tmp" || fail "cannot unpack into $tmp (disk full, or this file is damaged)"
"$tmp/botctl" "$@"
exit $?
