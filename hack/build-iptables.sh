#!/usr/bin/env bash
# Puts the real iptables VERSION (the nf_tables backend, xtables-nft-multi)
# of the Debian release that ships it into _output/iptables/VERSION/, for
# the doctor's differential tests. Nothing is installed on the machine: not
# on PATH, not under /usr; the tests run these binaries in throwaway network
# namespaces only.
#
#   1.8.7   Debian 11 (bullseye)  iptables 1.8.7-1   libnftnl 1.1.9-1
#   1.8.9   Debian 12 (bookworm)  iptables 1.8.9-2   libnftnl 1.2.4-2
#   1.8.11  Debian 13 (trixie)    iptables 1.8.11-2  libnftnl 1.2.9-1
#
# (1.8.8 and 1.8.10 are in no Debian release, so there is nothing to fetch;
# the doctor models them.)
#
# Why Debian's binary packages and not a build from the upstream tarballs:
# the package mirror this project can reach serves the binary pool but only
# some of the source pool (iptables_1.8.7.orig.tar.bz2, libnftnl_1.1.9 and
# libnftnl_1.2.9's tarballs answer 404), so a source build of 1.8.7 or
# 1.8.11 cannot be done here. Debian's build is also exactly the binary a
# Debian 11/12/13 node runs.
#
# The .debs come from a private apt directory (_output/iptables/apt/SUITE:
# its own sources.list, lists and cache; debian_download in hack/lib.sh), so
# the machine's apt configuration is untouched. apt checks each file against
# the signed Packages index; the versions are pinned below, and build.stamp
# records each file's sha256.
#
# Libraries: each version runs with its own release's libnftnl, libxtables,
# libmnl and extensions (XTABLES_LIBDIR), never the machine's. The names
# beside the binary (iptables, ip6tables, iptables-save, ...) are small
# wrappers that exec the release's binary through a dynamic loader with
# --library-path and --argv0 (xtables-nft-multi picks its personality from
# argv[0]): the machine's loader when the release's libc is older than the
# machine's (bullseye, bookworm), the release's own loader and libc when it
# is newer (trixie's binaries need glibc 2.38 symbols).
#
# A no-op when _output/iptables/VERSION/ holds the same pinned packages with
# the same recipe. The last line printed is the path of that version's
# `iptables`; ip6tables, iptables-save, ip6tables-save, iptables-restore and
# ip6tables-restore sit beside it. Cold: a few seconds per version (the
# download); see docs/doctor.md.
#
# Usage: hack/build-iptables.sh [--force] VERSION     (as root)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/hack/lib.sh"

force=0
if [[ ${1:-} == --force ]]; then force=1; shift; fi
if [[ $# -ne 1 ]]; then
  echo "usage: $0 [--force] VERSION   (VERSION: 1.8.7, 1.8.9 or 1.8.11)" >&2
  exit 2
fi
version=$1

# VERSION -> Debian suite, the packages (pinned), and whether the release's
# own libc must come along.
libs_common=(libmnl0 libnfnetlink0 libnetfilter-conntrack3 libip4tc2 libip6tc2)
case $version in
  1.8.7)
    suite=bullseye own_libc=0
    pkgs=(iptables=1.8.7-1 libxtables12=1.8.7-1 libnftnl11=1.1.9-1 "${libs_common[@]}")
    ;;
  1.8.9)
    suite=bookworm own_libc=0
    pkgs=(iptables=1.8.9-2 libxtables12=1.8.9-2 libnftnl11=1.2.4-2 "${libs_common[@]}")
    ;;
  1.8.11)
    suite=trixie own_libc=1
    pkgs=(iptables=1.8.11-2 libxtables12=1.8.11-2 libnftnl11=1.2.9-1 "${libs_common[@]}" libc6 libgcc-s1)
    ;;
  *)
    echo "$0: no recipe for iptables $version (known: 1.8.7, 1.8.9, 1.8.11)" >&2
    exit 2
    ;;
esac

out="$root/_output/iptables/$version"
stamp="$out/build.stamp"
recipe="$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)"
want="iptables $version from Debian $suite: ${pkgs[*]}
recipe $recipe"

if [[ $force == 0 && -f $stamp && "$(head -n2 "$stamp")" == "$want" && -x $out/iptables ]]; then
  echo "iptables $version is up to date in $out" >&2
  echo "$out/iptables"
  exit 0
fi

require_root
start=$SECONDS

debs="$root/_output/iptables/debs/$version"
rm -rf "$debs"
debian_download "$suite" "$debs" "${pkgs[@]}"

tmp="$out.tmp"
rm -rf "$tmp"
mkdir -p "$tmp/root"
trap 'rm -rf "$tmp"' EXIT
for deb in "$debs"/*.deb; do
  dpkg-deb -x "$deb" "$tmp/root"
done

libdir=usr/lib/x86_64-linux-gnu
multi=usr/sbin/xtables-nft-multi
[[ -x $tmp/root/$multi ]] || { echo "$0: $multi missing from Debian $suite's iptables" >&2; exit 1; }
if [[ $own_libc == 1 ]]; then
  loader='"$d/root/lib64/ld-linux-x86-64.so.2"'
  [[ -e $tmp/root/lib64/ld-linux-x86-64.so.2 ]] || loader='"$d/root/usr/lib64/ld-linux-x86-64.so.2"'
  libpath="\$d/root/$libdir:\$d/root/lib/x86_64-linux-gnu"
else
  loader=/lib64/ld-linux-x86-64.so.2
  libpath="\$d/root/$libdir:\$d/root/lib/x86_64-linux-gnu"
fi
for name in iptables ip6tables iptables-save ip6tables-save iptables-restore ip6tables-restore; do
  cat > "$tmp/$name" <<WRAP
#!/bin/sh
# iptables $version from Debian $suite, with its own libraries (hack/build-iptables.sh).
d=\$(dirname "\$(readlink -f "\$0")")
XTABLES_LIBDIR="\$d/root/$libdir/xtables" exec $loader --library-path "$libpath" --argv0 $name "\$d/root/$multi" "\$@"
WRAP
  chmod +x "$tmp/$name"
done

got="$("$tmp/iptables" --version)"
if [[ $got != "iptables v$version (nf_tables)" ]]; then
  echo "$0: iptables $version from Debian $suite reports '$got', want 'iptables v$version (nf_tables)'" >&2
  exit 1
fi
{
  printf '%s\n' "$want"
  (cd "$debs" && sha256sum *.deb)
} > "$tmp/build.stamp"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "put iptables $version (Debian $suite) in $out in $((SECONDS - start))s" >&2
echo "$out/iptables"
