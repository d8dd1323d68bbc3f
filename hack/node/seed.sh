# Sourced by hack/node.sh: `seed-side-by-side`, the seed of this project on
# the node. kube-router's network policy controller (the one K3s embeds, at
# the release hack/build-kube-router.sh builds) runs as a DaemonSet beside
# kube-fence, after the seed's native nftables rules went into every node's
# `ip filter`: kube-router's `iptables -C` meets them and it crash-loops,
# while kube-fence stays Ready and enforces. Each step checks what it
# expects and fails saying what it saw; docs/k3s.md shows a run's output.

kube_router_version=v2.10.0
kube_router_image="kube-fence.local/kube-router:$kube_router_version"
# Debian 12's packages besides iptables 1.8.9 and its libraries (pinned in
# hack/build-iptables.sh): ipset, which kube-router runs, and glibc, which
# they all link. glibc follows bookworm's point releases, so it is not
# pinned; the image's stamp records every .deb's sha256.
kube_router_debs=(ipset=7.17-1 libipset13=7.17-1 libc6)

# The seed's native rules in FORWARD (docs/doctor.md), inserted so they come
# before any rule of kube-router's. Only FORWARD, as on the seed's node, so
# kube-router fails on the seed's very check (with a native rule in INPUT
# too it fails on whichever chain it happens to check first).
seed_rules=(
  'ip filter FORWARD oifname "wt0" ct state established,related accept'
  'ip filter FORWARD ct state established,related accept'
)

# kube_router_image_build: the image as a docker-archive tarball in
# $S/images: Debian 12's files unpacked in a layer, the static kube-router.
kube_router_image_build() {
  local dir="$root/_output/kube-router-image" files debs
  files="$dir/files" debs="$dir/debs"
  "$root/hack/build-kube-router.sh" "$kube_router_version" >&2
  "$root/hack/build-iptables.sh" 1.8.9 >/dev/null
  rm -rf "$dir"
  mkdir -p "$files" "$debs"
  cp "$root/_output/iptables/debs/1.8.9/"*.deb "$debs/"
  debian_download bookworm "$debs" "${kube_router_debs[@]}"
  local deb
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$files"; done
  rm -rf "$files"/usr/share/{doc,man,locale,lintian,info} "$files"/etc/init.d
  (cd "$debs" && sha256sum *.deb) > "$dir/debs.sha256"
  image_tool
  "$root/_output/images/images" -kind kube-router -ref "$kube_router_image" \
    -bin "$bin/kube-router-$kube_router_version" -root "$files" -o "$S/images/kube-router.tar"
}

# plant_seed_rules I: the seed's rules in node I's `ip filter`, FORWARD
# created as iptables-nft creates it when it is missing.
plant_seed_rules() {
  local i="$1" r
  nsnet "node-$i" nft add table ip filter
  nsnet "node-$i" nft add chain ip filter FORWARD '{ type filter hook forward priority filter; policy accept; }'
  for r in "${seed_rules[@]}"; do
    # shellcheck disable=SC2086 # the rule is words for nft
    nsnet "node-$i" nft insert rule $r
  done
}

# pod_state LABEL FIELD: a jsonpath FIELD of the first kube-system pod with
# app.kubernetes.io/name=LABEL on node-1.
pod_state() {
  kc -n kube-system get pods -l "app.kubernetes.io/name=$1" --field-selector spec.nodeName=node-1 \
    -o "jsonpath={.items[0]$2}" 2>/dev/null
}
# crash_looping: kube-router's container on node-1 exited 255 (klog's
# Fatal) at least three times and the kubelet is backing off. Its STATUS
# alternates between CrashLoopBackOff (waiting out the back-off) and Error
# (the last exit, shown until the kubelet's next sync of the pod).
crash_looping() {
  local cs=.status.containerStatuses[0]
  [[ "$(pod_state kube-router "$cs.restartCount")" -ge 3 &&
    "$(pod_state kube-router "$cs.lastState.terminated.exitCode")" == 255 &&
    "$(pod_state kube-router "$cs.ready")" == false ]]
}
# in_back_off: its STATUS reads CrashLoopBackOff, with a back-off of at
# least 80 s ahead (the fourth restart on), so the report below sees the
# same state and the previous container's log.
in_back_off() {
  [[ "$(pod_state kube-router .status.containerStatuses[0].state.waiting.reason)" == CrashLoopBackOff &&
    "$(pod_state kube-router .status.containerStatuses[0].restartCount)" -ge 4 ]]
}

# probe FROM TO: agnhost's verdict on pod FROM of namespace seed opening
# TO's port 80 within 2 s: nothing when it connects, else TIMEOUT (dropped),
# REFUSED, ... connects and times_out are for wait_for.
probe() {
  kc -n seed exec "$1" -- /agnhost connect --timeout=2s "$(kc -n seed get pod "$2" -o 'jsonpath={.status.podIP}')":80 2>&1
}
connects() { [[ -z "$(probe "$@")" ]]; }
times_out() { [[ "$(probe "$@")" == *TIMEOUT* ]]; }

seed_side_by_side() {
  local n i
  n="$(cat "$S/nodes" 2>/dev/null)" || die "the node is not up: run hack/node.sh up"
  kc -n kube-system get daemonset kube-fence >/dev/null 2>&1 ||
    die "kube-fence is not installed: run hack/node.sh up without --no-kube-fence"
  ! kc get namespace seed >/dev/null 2>&1 ||
    die "seed-side-by-side already ran on this node: run it on a fresh one (hack/node.sh down; hack/node.sh up)"
  log "building the kube-router $kube_router_version image (Debian 12's iptables 1.8.9 and ipset) ..."
  kube_router_image_build
  import_images "$S/images/kube-router.tar"
  for ((i = 1; i <= n; i++)); do plant_seed_rules "$i"; done
  log "the seed's rules are in every node's ip filter FORWARD"

  log "applying kube-router's DaemonSet (hack/node/kube-router.yaml) ..."
  kc apply -f "$root/hack/node/kube-router.yaml" >/dev/null
  wait_for "kube-router's pod on node-1 to crash-loop (3 restarts, exit 255)" 240 crash_looping
  log "kube-router: restarted $(pod_state kube-router .status.containerStatuses[0].restartCount) times, exit 255 each"

  log "kube-fence enforces beside it: a server and a client in namespace seed ..."
  kc create namespace seed >/dev/null
  kc -n seed run server --image="$agnhost_image" --labels=app=server --overrides='{"spec":{"nodeName":"node-1"}}' \
    -- netexec --http-port=80 >/dev/null
  kc -n seed run client --image="$agnhost_image" --labels=app=client --overrides='{"spec":{"nodeName":"node-1"}}' \
    -- pause >/dev/null
  kc -n seed wait --for=condition=Ready pod/server pod/client --timeout=120s >/dev/null
  wait_for "client to reach server without a policy" 30 connects client server
  log "  no policy: client -> server connects"
  kc apply -f - >/dev/null <<'YAML'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server-from-nobody, namespace: seed}
spec:
  podSelector: {matchLabels: {app: server}}
  policyTypes: [Ingress]
YAML
  wait_for "the deny policy to be enforced (client -> server timing out)" 30 times_out client server
  log "  default-deny ingress on server: client -> server times out"
  kc -n seed delete networkpolicy server-from-nobody >/dev/null
  wait_for "the deny policy's removal to be enforced" 30 connects client server
  log "  policy deleted: client -> server connects again"

  [[ "$(pod_state kube-fence '.status.containerStatuses[0].ready')" == true ]] ||
    die "kube-fence's pod on node-1 is not Ready"
  crash_looping || die "kube-router's pod on node-1 no longer crash-loops"
  # For the record, the moment its STATUS reads CrashLoopBackOff.
  wait_for "kube-router's pod on node-1 to show CrashLoopBackOff" 240 in_back_off
  seed_report
}

# seed_report: what docs/k3s.md records, on stdout.
seed_report() {
  local p
  echo '$ kubectl -n kube-system get pods -o wide'
  kc -n kube-system get pods -o wide
  p="$(pod_state kube-router '.metadata.name')"
  echo
  echo "\$ kubectl -n kube-system logs --previous $p"
  kc -n kube-system logs --previous "$p" 2>&1 | tail -n 4
  echo
  echo "\$ kubectl -n kube-system get events --field-selector involvedObject.name=$p"
  kc -n kube-system get events --field-selector "involvedObject.name=$p" 2>&1
  p="$(pod_state kube-fence '.metadata.name')"
  echo
  echo "\$ kubectl -n kube-system logs $p | tail -n 5"
  kc -n kube-system logs "$p" 2>&1 | tail -n 5
  echo
  echo '$ nft list chain ip filter FORWARD    # in node-1'
  nsnet node-1 nft list chain ip filter FORWARD
  # The check kube-router dies on, by hand, now that it made its chain.
  echo
  echo '$ iptables -t filter -C FORWARD -m comment --comment "kube-router netpol - TEMCG2JMHZYE7H7T" -j KUBE-ROUTER-FORWARD --wait    # in node-1, iptables 1.8.9'
  nsnet node-1 "$root/_output/iptables/1.8.9/iptables" -t filter -C FORWARD -m comment \
    --comment "kube-router netpol - TEMCG2JMHZYE7H7T" -j KUBE-ROUTER-FORWARD --wait 2>&1 || echo "exit status $?"
}
