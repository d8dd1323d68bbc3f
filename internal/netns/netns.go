// Package netns creates throwaway Linux network namespaces and runs code and
// commands inside them.
//
// Namespaces made here are anonymous: they are held only by a file descriptor
// of this process, so they vanish when the process exits, however it exits.
// That is what lets the lab and the tests promise to leave nothing behind even
// after a SIGKILL. Code that needs a path for other tools gets /proc/PID/fd/N.
package netns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"

	"github.com/vishvananda/netns"
)

// NS is a network namespace held open by this process.
type NS struct {
	handle netns.NsHandle
	owned  bool // created here, so Close releases the last reference
}

// New creates a new, empty network namespace (only a down loopback).
func New() (*NS, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("get current network namespace: %w", err)
	}
	defer orig.Close()
	h, err := netns.New() // creates and enters the namespace on this thread
	if err != nil {
		return nil, fmt.Errorf("create network namespace: %w", err)
	}
	if err := netns.Set(orig); err != nil {
		// This thread is stuck in the new namespace: keep it locked so the
		// runtime destroys it instead of reusing it.
		runtime.LockOSThread()
		h.Close()
		return nil, fmt.Errorf("return to original network namespace: %w", err)
	}
	ns := &NS{handle: h, owned: true}
	if err := ns.Do(bringUpLoopback); err != nil {
		ns.Close()
		return nil, err
	}
	return ns, nil
}

// FD returns the namespace's file descriptor, for APIs such as netlink
// sockets that can be opened inside a namespace by descriptor.
func (n *NS) FD() int { return int(n.handle) }

// Handle returns the namespace as the vishvananda/netns type, for netlink
// handles.
func (n *NS) Handle() netns.NsHandle { return n.handle }

// Path returns a path other processes can pass to setns(2) or nsenter while
// this process keeps the namespace open.
func (n *NS) Path() string { return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), n.handle) }

// Close releases the namespace. Sockets and processes still inside keep it
// alive until they end.
func (n *NS) Close() error {
	if n == nil || !n.handle.IsOpen() {
		return nil
	}
	return n.handle.Close()
}

// Do runs f on an OS thread that has entered the namespace. Sockets created by
// f stay in the namespace after Do returns. f must not start goroutines that
// expect to inherit the namespace: they run on other threads.
func (n *NS) Do(f func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get current network namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(n.handle); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace: %w", err)
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: the runtime then retires it rather than
		// letting another goroutine run in the wrong namespace.
		return errors.Join(ferr, fmt.Errorf("leave network namespace: %w", err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// Start starts cmd inside the namespace. The child inherits the namespace of
// the thread that forks it, so the fork happens inside Do.
func (n *NS) Start(cmd *exec.Cmd) error {
	return n.Do(cmd.Start)
}

// Run runs cmd inside the namespace and waits for it.
func (n *NS) Run(cmd *exec.Cmd) error {
	if err := n.Start(cmd); err != nil {
		return err
	}
	return cmd.Wait()
}

// Command runs name with args inside the namespace and returns its combined
// output, with the exit status in the error as exec does.
func (n *NS) Command(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	var out []byte
	err := n.Do(func() error {
		var err error
		out, err = cmd.CombinedOutput()
		return err
	})
	return out, err
}

// WriteSysctl sets a /proc/sys value inside the namespace; net.* sysctls are
// resolved against the network namespace of the thread that opens them.
func (n *NS) WriteSysctl(key, value string) error {
	return n.Do(func() error {
		path := "/proc/sys/" + sysctlPath(key)
		if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
		}
		return nil
	})
}

// ReadSysctl reads a /proc/sys value inside the namespace.
func (n *NS) ReadSysctl(key string) (string, error) {
	var v string
	err := n.Do(func() error {
		b, err := os.ReadFile("/proc/sys/" + sysctlPath(key))
		if err != nil {
			return fmt.Errorf("sysctl %s: %w", key, err)
		}
		v = string(trimNewline(b))
		return nil
	})
	return v, err
}

func sysctlPath(key string) string {
	b := []byte(key)
	for i, c := range b {
		if c == '.' {
			b[i] = '/'
		}
	}
	return string(b)
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

// Open opens an existing network namespace by path: /proc/PID/ns/net,
// /run/netns/NAME, or a /proc/PID/fd/N another program holds. Close
// releases the handle; the namespace lives on with its other holders.
func Open(path string) (*NS, error) {
	h, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", path, err)
	}
	return &NS{handle: h}, nil
}
