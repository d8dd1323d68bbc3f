# Sourced by hack/node.sh: the node's certificates and kubeconfigs, made with
# openssl. One CA signs everything; ECDSA P-256 keys; a year of validity.

# pki_cert NAME SUBJECT EXT: NAME.crt/.key in $pki, signed by the CA.
pki_cert() {
  local name="$1" subj="$2" ext="$3"
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/$name.key" 2>/dev/null
  openssl req -new -key "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 365 -out "$pki/$name.crt" -extfile <(printf '%s\n' "$ext") 2>/dev/null
  rm -f "$pki/$name.csr"
}

# pki_kubeconfig NAME: $pki/NAME.kubeconfig for NAME.crt, to the API server.
pki_kubeconfig() {
  cat > "$pki/$1.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: node
  cluster:
    server: https://$(node4 1):6443
    certificate-authority: $pki/ca.crt
users:
- name: $1
  user:
    client-certificate: $pki/$1.crt
    client-key: $pki/$1.key
contexts:
- name: node
  context: {cluster: node, user: $1}
current-context: node
KC
}

# pki_all NODES: the CA, the API server's serving certificate, the service
# account key, and a client certificate and kubeconfig per component.
pki_all() {
  local nodes="$1" i n client="extendedKeyUsage=clientAuth"
  mkdir -p "$pki"
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=kube-fence-node-ca" -days 365 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$pki/ca.crt" 2>/dev/null
  pki_cert apiserver "/CN=kube-apiserver" "extendedKeyUsage=serverAuth
subjectAltName=IP:$(node4 1),IP:$(node6 1),IP:127.0.0.1,IP:10.96.0.1,IP:fd96::1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/sa.key" 2>/dev/null
  openssl ec -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  pki_cert admin "/O=system:masters/CN=kube-fence-node-admin" "$client"
  pki_cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client"
  pki_cert kube-controller-manager "/CN=system:kube-controller-manager" "$client"
  pki_cert kube-scheduler "/CN=system:kube-scheduler" "$client"
  pki_cert kube-proxy "/CN=system:kube-proxy" "$client"
  for n in admin kube-controller-manager kube-scheduler kube-proxy; do pki_kubeconfig "$n"; done
  for ((i = 1; i <= nodes; i++)); do
    pki_cert "kubelet-node-$i" "/O=system:nodes/CN=system:node:node-$i" "$client"
    pki_kubeconfig "kubelet-node-$i"
  done
}
