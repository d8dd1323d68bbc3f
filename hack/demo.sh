#!/usr/bin/env bash
# The lab demo on a fresh Debian 12 machine, as root: installs what it needs,
# builds kube-fence and runs `kube-fence lab demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh
require_root
ensure_go
apt_install iptables nftables iproute2
mkdir -p bin
go build -o bin/kube-fence ./cmd/kube-fence
exec ./bin/kube-fence lab demo "$@"
