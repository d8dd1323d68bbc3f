#!/usr/bin/env bash
# A real Kubernetes node on this machine, in namespaces of its own: etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, a kubelet with
# Debian's containerd and runc, a cni0 bridge with host-local IPAM for both
# families (as flannel sets it up on K3s), kube-proxy in nftables mode, and
# kube-fence installed with `kubectl apply -k deploy/`. docs/testing-e2e.md
# ("A real node") explains every choice.
#
#   hack/node.sh up [--nodes N] [--ipv6] [--no-kube-fence]
#                                                    start; last line: the admin kubeconfig
#   hack/node.sh down                                stop and remove everything up made
#   hack/node.sh kubectl ARGS...                     kubectl against the node, from anywhere
#   hack/node.sh exec [--node I] CMD...              CMD in node I's network namespace (default 1)
#   hack/node.sh images [--node I]                   image references in node I's containerd
#   hack/node.sh import TAR...                       docker-archive images into every node's containerd
#   hack/node.sh e2e [E2E.TEST ARGS...]              the upstream e2e.test against the node
#   hack/node.sh seed-side-by-side                   the seed's rules in every node's ip filter, then
#                                                    kube-router's netpol controller beside kube-fence:
#                                                    it crash-loops, kube-fence enforces (docs/k3s.md)
#
# Nothing touches the machine's own network namespace, firewall, sysctls or
# /var, /run, /etc: every process runs in a network namespace and a private
# mount namespace made here, and writes land under _output/node.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/hack/lib.sh"
bin="$root/_output/bin"
# KUBE_FENCE_NODE_DIR and KUBE_FENCE_NODE_CGROUP let a test run a node of its
# own beside one a developer has up.
S="${KUBE_FENCE_NODE_DIR:-$root/_output/node}"
# One cgroup name in every v1 hierarchy: the kubelets' cgroupRoot lives below
# it, and the pids hierarchy's copy also tracks every process started here,
# so `down` finds them all, containers included.
CG="${KUBE_FENCE_NODE_CGROUP:-kube-fence-node}"
k8s_version=v1.37.2   # hack/kube-apiserver/go.mod; checked against the binaries

# Addresses: a "lan" namespace with bridge lan0 joins the nodes; node I has
# eth0 = 10.89.0.1I / fd89::1I. Pods get 10.244.x.0/24 and fd44:0:0:x::/64
# from the controller-manager; Services 10.96.0.0/16 and fd96::/112.
lan4=10.89.0.1 lan6=fd89::1
node4() { echo "10.89.0.1$1"; }
node6() { echo "fd89::1$1"; }
# `up --ipv6` makes IPv6 the primary family: listed first everywhere, so
# Services, the API server's endpoint and every pod's status.podIP are IPv6.
family() { cat "$S/family" 2>/dev/null || echo 4; }
pair() { if [[ $(family) == 6 ]]; then echo "$2,$1"; else echo "$1,$2"; fi; }
cluster_cidr() { pair 10.244.0.0/16 fd44::/56; }
service_cidr() { pair 10.96.0.0/16 fd96::/112; }
kubefence_image=ghcr.io/kube-fence/kube-fence:local
pause_image=registry.k8s.io/pause:3.10.2
agnhost_image=registry.k8s.io/e2e-test-images/agnhost:2.66.1

log() { echo "node.sh: $*" >&2; }
die() { log "$*"; exit 1; }

holder() { cat "$S/$1.pid" 2>/dev/null || die "$1 is not up (no $S/$1.pid): run hack/node.sh up"; }
# nsrun NAME CMD...: CMD in the network and mount namespaces of NAME (lan, node-1, ...).
nsrun() {
  local h; h="$(holder "$1")"; shift
  nsenter --net="/proc/$h/ns/net" --mount="/proc/$h/ns/mnt" -- "$@"
}
nsnet() {
  local h; h="$(holder "$1")"; shift
  nsenter --net="/proc/$h/ns/net" -- "$@"
}

# start NAME LOG CMD...: CMD in NAME's namespaces, in the tracking cgroup,
# detached, logging to $S/LOG.log; records its pid in $S/LOG.pid.
start() {
  local ns="$1" name="$2"; shift 2
  local h; h="$(holder "$ns")"
  setsid bash -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' _ "/sys/fs/cgroup/pids/$CG" \
    nsenter --net="/proc/$h/ns/net" --mount="/proc/$h/ns/mnt" -- "$@" \
    </dev/null >"$S/$name.log" 2>&1 &
  echo $! > "$S/$name.pid"
}

# wait_for WHAT SECONDS CMD...: polls CMD until it succeeds.
wait_for() {
  local what="$1" secs="$2" i; shift 2
  for ((i = 0; i < secs * 2; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  die "timed out after ${secs}s waiting for $what (logs in $S/*.log)"
}

kc() { nsnet node-1 "$bin/kubectl" --kubeconfig "$S/pki/admin.kubeconfig" "$@"; }

. "$root/hack/node/pki.sh"
. "$root/hack/node/config.sh"
. "$root/hack/node/seed.sh"
pki="$S/pki"

# The values protectKernelDefaults requires; a node's mount namespace shows
# files holding them over /proc/sys where the machine's differ.
kernel_defaults=(vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1
  kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000)

own_netns() { [[ "$(readlink "/proc/$1/ns/net")" != "$(readlink /proc/self/ns/net)" ]]; }

# new_holder NAME: a process in a new network and private mount namespace;
# everything of NAME runs in its namespaces.
new_holder() {
  setsid bash -c 'echo $$ > "$1/cgroup.procs"; exec unshare --net --mount --propagation private sleep infinity' \
    _ "/sys/fs/cgroup/pids/$CG" </dev/null >/dev/null 2>&1 &
  echo $! > "$S/$1.pid"
  wait_for "$1's namespaces" 10 own_netns "$!"
  nsrun "$1" ip link set lo up
}

make_cgroups() {
  local h
  for h in /sys/fs/cgroup/*/; do
    [[ -e $h/cgroup.procs && ! -e $h/cgroup.controllers ]] || continue # v1 hierarchies only
    mkdir -p "$h$CG"
  done
  # A new cpuset is empty until told which CPUs and memory nodes it has.
  local c=/sys/fs/cgroup/cpuset
  if [[ -d $c/$CG ]]; then
    cat "$c/cpuset.cpus" > "$c/$CG/cpuset.cpus"
    cat "$c/cpuset.mems" > "$c/$CG/cpuset.mems"
  fi
}

# node_fs I: node I's private view of the machine: its own /run, /var/log,
# overlays over /var/lib and /opt (writes land in $S/node-I), and the kernel
# settings the kubelet checks.
node_fs() {
  local i="$1" d="$S/node-$1" h kv
  mkdir -p "$d"/{varlib,opt}/{upper,work} "$d"/{log,cni,containerd,sysctl}
  for h in /sys/fs/cgroup/*/; do
    [[ -d $h$CG ]] && mkdir -p "$h$CG/node-$i"
  done
  if [[ -d /sys/fs/cgroup/cpuset/$CG/node-$i ]]; then
    cat "/sys/fs/cgroup/cpuset/$CG/cpuset.cpus" > "/sys/fs/cgroup/cpuset/$CG/node-$i/cpuset.cpus"
    cat "/sys/fs/cgroup/cpuset/$CG/cpuset.mems" > "/sys/fs/cgroup/cpuset/$CG/node-$i/cpuset.mems"
  fi
  nsrun "node-$i" mount -t tmpfs -o mode=755 tmpfs /run
  nsrun "node-$i" mount -t overlay overlay -o "lowerdir=/var/lib,upperdir=$d/varlib/upper,workdir=$d/varlib/work" /var/lib
  nsrun "node-$i" mount -t overlay overlay -o "lowerdir=/opt,upperdir=$d/opt/upper,workdir=$d/opt/work" /opt
  nsrun "node-$i" mount --bind "$d/log" /var/log
  for kv in "${kernel_defaults[@]}"; do
    local key="${kv%%=*}" want="${kv#*=}" f
    f="$d/sysctl/${key//\//.}"
    if [[ "$(cat "/proc/sys/$key")" != "$want" ]]; then
      echo "$want" > "$f"
      nsrun "node-$i" mount --bind "$f" "/proc/sys/$key"
    fi
  done
}

# network NODES: lan0 in the lan namespace, eth0 in each node's, forwarding
# on in both (their own sysctls: net.* is per network namespace).
network() {
  local n="$1" i
  new_holder lan
  nsrun lan ip link add lan0 type bridge
  nsrun lan ip addr add "$lan4/24" dev lan0
  nsrun lan ip addr add "$lan6/64" dev lan0 nodad
  nsrun lan ip link set lan0 up
  nsrun lan sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
  for ((i = 1; i <= n; i++)); do
    new_holder "node-$i"
    nsrun lan ip link add "veth-node-$i" type veth peer name eth0 netns "$(holder "node-$i")"
    nsrun lan ip link set "veth-node-$i" master lan0 up
    nsrun "node-$i" ip addr add "$(node4 "$i")/24" dev eth0
    nsrun "node-$i" ip addr add "$(node6 "$i")/64" dev eth0 nodad
    nsrun "node-$i" ip link set eth0 up
    nsrun "node-$i" ip route add default via "$lan4"
    nsrun "node-$i" ip -6 route add default via "$lan6"
    nsrun "node-$i" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
  done
}

control_plane() {
  mkdir -p "$S/etcd"
  start node-1 etcd /usr/bin/etcd --name node-1 --data-dir "$S/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster node-1=http://127.0.0.1:2380 --experimental-watch-progress-notify-interval=100ms
  start node-1 kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers=http://127.0.0.1:2379 --secure-port=6443 --advertise-address="$(pair "$(node4 1)" "$(node6 1)" | cut -d, -f1)" \
    --client-ca-file="$pki/ca.crt" --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types=InternalIP \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range="$(service_cidr)" --authorization-mode=Node,RBAC \
    --allow-privileged=true --enable-priority-and-fairness=false
  wait_for "kube-apiserver" 120 kc get --raw /readyz
  start node-1 kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig="$pki/kube-controller-manager.kubeconfig" --bind-address=127.0.0.1 --leader-elect=false \
    --allocate-node-cidrs --cluster-cidr="$(cluster_cidr)" --service-cluster-ip-range="$(service_cidr)" \
    --node-cidr-mask-size-ipv4=24 --node-cidr-mask-size-ipv6=64 \
    --root-ca-file="$pki/ca.crt" --service-account-private-key-file="$pki/sa.key" --use-service-account-credentials \
    --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key"
  start node-1 kube-scheduler "$bin/kube-scheduler" \
    --kubeconfig="$pki/kube-scheduler.kubeconfig" --bind-address=127.0.0.1 --leader-elect=false
}

node_up() {
  local i="$1" d="$S/node-$1" img
  node_fs "$i"
  containerd_config "$i"
  kubelet_config "$i"
  kube_proxy_config "$i"
  start "node-$i" "containerd-node-$i" /usr/bin/containerd --config "$d/containerd.toml"
  wait_for "node-$i's containerd" 30 nsrun "node-$i" ctr --address /run/containerd/containerd.sock version
  for img in pause agnhost kube-fence; do
    nsrun "node-$i" ctr --address /run/containerd/containerd.sock -n k8s.io images import --no-unpack=false \
      "$S/images/$img.tar" >/dev/null
  done
  start "node-$i" "kubelet-node-$i" "$bin/kubelet" --config="$d/kubelet.yaml" \
    --kubeconfig="$pki/kubelet-node-$i.kubeconfig" --hostname-override="node-$i" \
    --node-ip="$(pair "$(node4 "$i")" "$(node6 "$i")")"
  start "node-$i" "kube-proxy-node-$i" "$bin/kube-proxy" --config="$d/kube-proxy.yaml"
}

has_pod_cidrs() { [[ -n "$(kc get node "$1" -o jsonpath='{.spec.podCIDRs}' 2>/dev/null)" ]]; }

# pod_network NODES: once the controller-manager gave each node its
# podCIDRs, node I's CNI config and the routes to every other node's pods.
pod_network() {
  local n="$1" i j cidrs v4 v6
  declare -A c4 c6
  for ((i = 1; i <= n; i++)); do
    wait_for "node-$i's podCIDRs" 120 has_pod_cidrs "node-$i"
    cidrs="$(kc get node "node-$i" -o jsonpath='{.spec.podCIDRs[*]}')"
    for c in $cidrs; do
      if [[ $c == *:* ]]; then c6[$i]="$c"; else c4[$i]="$c"; fi
    done
    cni_config "$i" "${c4[$i]}" "${c6[$i]}"
  done
  for ((i = 1; i <= n; i++)); do
    nsrun lan ip route add "${c4[$i]}" via "$(node4 "$i")"
    nsrun lan ip -6 route add "${c6[$i]}" via "$(node6 "$i")"
    for ((j = 1; j <= n; j++)); do
      ((i == j)) && continue
      nsrun "node-$i" ip route add "${c4[$j]}" via "$(node4 "$j")"
      nsrun "node-$i" ip -6 route add "${c6[$j]}" via "$(node6 "$j")"
    done
  done
}

# image_tool: hack/images's tool and the static pause in _output/images.
image_tool() {
  ensure_go
  mkdir -p "$S/images" "$root/_output/images"
  (cd "$root/hack/images" && GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=readonly \
    go build -o "$root/_output/images/" . ./pause)
}

# images: the three images as docker-archive tarballs (hack/images), from
# binaries built at the pinned release and from this checkout.
images() {
  image_tool
  "$root/hack/build-static.sh" "$bin/kube-fence" >/dev/null
  local tool="$root/_output/images/images"
  "$tool" -kind kube-fence -ref "$kubefence_image" -bin "$bin/kube-fence" -o "$S/images/kube-fence.tar"
  "$tool" -kind pause -ref "$pause_image" -bin "$root/_output/images/pause" -o "$S/images/pause.tar"
  "$tool" -kind agnhost -ref "$agnhost_image" -bin "$bin/agnhost" -o "$S/images/agnhost.tar"
}

# install_kube_fence: deploy/ as users apply it, through an overlay that
# only points the image at the one imported here.
install_kube_fence() {
  local k="$S/kustomize"
  mkdir -p "$k"
  cat > "$k/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $(realpath --relative-to="$k" "$root/deploy")
images:
  - name: ghcr.io/kube-fence/kube-fence
    newTag: ${kubefence_image##*:}
YAML
  kc apply -k "$k" >/dev/null
  kc -n kube-system rollout status daemonset/kube-fence --timeout=180s >/dev/null ||
    die "kube-fence did not become Ready: hack/node.sh kubectl -n kube-system describe pods -l app.kubernetes.io/name=kube-fence"
}

up() {
  local n=1 kubefence=1 ipv6=0
  while (($#)); do
    case "$1" in
      --nodes) n="${2:?--nodes needs a number}"; shift 2 ;;
      --no-kube-fence) kubefence=0; shift ;;
      --ipv6) ipv6=1; shift ;;
      *) die "up: unknown argument $1 (want --nodes N, --ipv6, --no-kube-fence)" ;;
    esac
  done
  [[ $n =~ ^[1-9]$ ]] || die "--nodes $n: want 1 to 9"
  [[ -e $S/lan.pid ]] && die "already up (or a failed up left $S): run hack/node.sh down first"
  for b in kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubectl agnhost; do
    [[ -x $bin/$b ]] || die "$bin/$b is missing: run hack/build-kube.sh"
  done
  for b in /usr/bin/etcd /usr/bin/containerd /usr/sbin/runc /usr/bin/ctr /usr/lib/cni/bridge /usr/lib/cni/host-local /usr/sbin/nft openssl; do
    command -v "$b" >/dev/null || die "$b is missing: run hack/ci-deps.sh (Debian packages etcd-server containerd runc containernetworking-plugins nftables)"
  done
  mkdir -p "$S"
  echo "$n" > "$S/nodes"
  if ((ipv6)); then echo 6 > "$S/family"; fi
  # Anything failing from here leaves state that down removes.
  trap 'log "up failed; hack/node.sh down removes what it made"' ERR
  images
  make_cgroups
  pki_all "$n"
  network "$n"
  control_plane
  local i
  for ((i = 1; i <= n; i++)); do node_up "$i"; done
  pod_network "$n"
  kc wait --for=condition=Ready node --all --timeout=180s >/dev/null
  ((kubefence)) && install_kube_fence
  echo "$pki/admin.kubeconfig"
}

# down: every process in the tracking cgroup (daemons, shims, containers,
# namespace holders) is killed; the namespaces, and with them every mount
# made inside, vanish with their last process; then the cgroups and files.
down() {
  local cg="/sys/fs/cgroup/pids/$CG" try pids
  for ((try = 0; try < 50; try++)); do
    pids="$(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)"
    [[ -z $pids ]] && break
    kill -KILL $pids 2>/dev/null || true
    sleep 0.2
  done
  [[ -z $pids ]] || die "processes in $cg survived SIGKILL: $pids"
  local h
  for h in /sys/fs/cgroup/*/; do
    [[ -d $h$CG ]] || continue
    # Children before parents.
    find "$h$CG" -depth -type d -exec rmdir {} + 2>/dev/null || true
    [[ -d $h$CG ]] && die "cannot remove cgroup $h$CG"
  done
  rm -rf "$S"
  log "down: nothing left"
}

# e2e ARGS...: the upstream e2e.test against the node, from node-1's network
# namespace, with this node's kubeconfig and kubectl; ARGS choose the specs
# (--ginkgo.focus=...). Its report goes to $S/e2e unless --report-dir is given.
e2e() {
  [[ -x $bin/e2e.test ]] || die "$bin/e2e.test is missing: run hack/build-kube.sh e2e.test"
  mkdir -p "$S/e2e"
  cd "$S/e2e"
  nsnet node-1 "$bin/e2e.test" --kubeconfig="$pki/admin.kubeconfig" --kubectl-path="$bin/kubectl" \
    --provider=skeleton --report-dir="$S/e2e" --minStartupPods=1 --disable-log-dump "$@"
}

# import TAR...: images (docker-archive tarballs, as hack/images writes them)
# into every node's containerd, where pods find them without a pull.
import_images() {
  local n i t
  n="$(cat "$S/nodes" 2>/dev/null)" || die "the node is not up: run hack/node.sh up"
  for ((i = 1; i <= n; i++)); do
    for t in "$@"; do
      nsrun "node-$i" ctr --address /run/containerd/containerd.sock -n k8s.io images import --no-unpack=false "$t" >/dev/null
    done
  done
}

node_arg() {
  node=1
  if [[ ${1:-} == --node ]]; then node="${2:?--node needs a number}"; shifted=2; else shifted=0; fi
}

cmd="${1:-}"
(($#)) && shift
case "$cmd" in
  up) require_root; up "$@" ;;
  down) require_root; down ;;
  kubectl) kc "$@" ;;
  exec) node_arg "$@"; shift "$shifted"; nsnet "node-$node" "$@" ;;
  e2e) e2e "$@" ;;
  seed-side-by-side) require_root; seed_side_by_side "$@" ;;
  import) require_root; import_images "$@" ;;
  images) node_arg "$@"; nsrun "node-$node" ctr --address /run/containerd/containerd.sock -n k8s.io images ls -q | grep -v '^sha256:' ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
