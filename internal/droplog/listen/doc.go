// Package listen reads the records kube-fence's table logs to an NFLOG group
// (see package droplog for what they mean) from a netlink socket, through
// github.com/florianl/go-nflog. It is apart from droplog so the pure parts
// (the prefix contract, decoding) can be used by the table's renderer
// without netlink I/O.
package listen
