# Sourced by hack/node.sh: configuration files of node I's containerd,
# kubelet, kube-proxy and CNI, written under $S/node-I.

containerd_config() {
  local i="$1" d="$S/node-$1"
  cat > "$d/containerd.toml" <<TOML
version = 2
# On the machine's own disk, not on the /var/lib overlay: overlayfs cannot
# use an overlay as upper layer, and the snapshotter's layers are overlays.
root = "$d/containerd"
state = "/run/containerd"
# opt would create /opt/containerd; the others are snapshotters not used here.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  # This VM lacks CAP_SYS_RESOURCE: runc cannot lower a process's
  # oom_score_adj below its parent's ("can't get final child's PID from
  # pipe"); restricting keeps the requested value at or above it.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$d/cni"
TOML
}

kubelet_config() {
  local i="$1" d="$S/node-$1"
  cat > "$d/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1 on this machine: allowed explicitly, cgroupfs (no systemd), and a
# root of our own that exists in every hierarchy (hack/node.sh makes it).
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$CG/node-$i
cgroupsPerQOS: true
# Check, never write, the kernel settings the kubelet wants; the private
# mount namespace shows it the values it expects (see hack/node.sh).
protectKernelDefaults: true
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
podLogsDir: /var/log/pods
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
clusterDomain: cluster.local
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
failSwapOn: false
# A shared build machine's disk is not a node's: evict only when it is full.
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
serializeImagePulls: false
YAML
}

kube_proxy_config() {
  local i="$1" d="$S/node-$1"
  cat > "$d/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $pki/kube-proxy.kubeconfig}
mode: nftables
hostnameOverride: node-$i
clusterCIDR: $(cluster_cidr)
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# The conntrack table's size and timeouts are the machine's, not a network
# namespace's: leave them alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
}

# cni_config I V4 V6: a cni0 bridge with host-local IPAM for both families
# from the node's podCIDRs, as flannel's bridge delegate is set up on K3s.
# No ipMasq or portmap: both run iptables binaries.
cni_config() {
  local i="$1" v4="$2" v6="$3" d="$S/node-$1"
  cat > "$d/cni/.10-cni0.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "cni0",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "isDefaultGateway": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [$(pair "[{\"subnet\": \"$v4\"}]" "[{\"subnet\": \"$v6\"}]")]
      }
    }
  ]
}
JSON
  mv "$d/cni/.10-cni0.conflist" "$d/cni/10-cni0.conflist"
}
