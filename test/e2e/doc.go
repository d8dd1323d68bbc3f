// Package e2e holds the end-to-end tests: kube-fence against a real
// kube-apiserver and etcd (test/e2e/framework) inside network namespaces the
// tests create, with the RBAC of deploy/rbac.yaml. They need root, Debian's
// etcd-server and the kube-apiserver that hack/build-kube-apiserver.sh
// builds; see docs/testing-e2e.md.
package e2e
