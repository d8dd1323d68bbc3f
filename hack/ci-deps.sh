#!/usr/bin/env bash
# Installs what the kernel and e2e tests need on a fresh Debian 12 machine and
# builds kube-apiserver. Run as root from anywhere in the checkout; safe to run
# again (installed packages and an up-to-date binary are left alone).
#
# A fragment for .ci/run: source nothing from it, just call it before go test.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/hack/lib.sh"
ensure_go

# iptables and nftables: the doctor and the tests that plant foreign rules;
# etcd-server: /usr/bin/etcd for test/e2e; iproute2: `ip` for the lab and
# the tests; ipset: the kube-router ipsets of the K3s migration test;
# curl, ca-certificates and unzip: the Go bootstrap and its test
# (test/bootstrap), which downloads the pinned toolchain as a user would;
# containerd, runc, containernetworking-plugins: the kubelet's runtime and CNI
# on the node of hack/node.sh (test/node); ca-certificates, tzdata: what the
# kube-fence image holds besides the binary (hack/images).
# (util-linux's unshare, setpriv and mount, which confine the agent in
# test/e2e as its container would be, are essential packages.)
packages=(iptables nftables etcd-server iproute2 ipset curl ca-certificates unzip containerd runc containernetworking-plugins tzdata openssl)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  echo "installing ${missing[*]}"
  apt-get update
  # A policy-rc.d that denies every start keeps etcd-server's postinst from
  # starting an etcd daemon on the host: the tests run their own inside a
  # network namespace, and containerd's from starting one on the host: the
  # node of hack/node.sh runs its own. One already present (containers ship
  # one) is kept.
  policy=/usr/sbin/policy-rc.d
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

for bin in etcd nft iptables ip ipset unshare setpriv nsenter containerd runc ctr openssl; do
  command -v "$bin" >/dev/null || { echo "$bin is missing after installing ${packages[*]}" >&2; exit 1; }
done

cd "$root"
GOFLAGS="-mod=readonly" GOWORK=off go mod download
# kube-apiserver for test/e2e; the node's binaries, agnhost and e2e.test for
# test/node (a rebuild with a warm Go cache only links).
"$root/hack/build-kube.sh"
# The agent the e2e tests run, built as the image ships it (static). Building
# it here fills Go's cache for CGO_ENABLED=0 once, outside the tests' time.
"$root/hack/build-static.sh" "$root/_output/e2e/kube-fence"
# The real iptables 1.8.7 (Debian 11) and 1.8.11 (Debian 13) for the doctor's
# differential tests, beside Debian 12's own 1.8.9 (installed above), in
# _output/iptables/VERSION/ (never on PATH). Cached; cold about 30 s in all.
"$root/hack/build-iptables.sh" 1.8.7 >/dev/null
"$root/hack/build-iptables.sh" 1.8.11 >/dev/null
# The image tool of hack/node.sh (a module of its own), fetched and compiled
# here rather than in the test's time.
(cd "$root/hack/images" && GOFLAGS="-mod=readonly" GOWORK=off go mod download)
