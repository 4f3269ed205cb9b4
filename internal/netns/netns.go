// Package netns builds small virtual networks from Linux network namespaces
// and veth pairs with iproute2, runs programs inside them, and removes
// exactly what it made: the namespaces it created and the processes it started.
package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Net is a set of namespaces sharing a name prefix.
type Net struct {
	Prefix string

	mu    sync.Mutex
	names []string
	procs []*Proc
}

// Proc is a process started in a namespace.
type Proc struct {
	Cmd  *exec.Cmd
	Name string
	done chan struct{}
	err  error
}

// Wait waits for the process to exit.
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Kill sends SIGKILL to the process group and waits for it.
func (p *Proc) Kill() {
	if p.Cmd.Process != nil {
		syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	}
	<-p.done
}

// Stop sends SIGTERM, then SIGKILL if the process has not exited after grace.
func (p *Proc) Stop(grace time.Duration) error {
	if p.Cmd.Process == nil {
		return nil
	}
	syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.Kill()
	}
	return p.err
}

// New starts a network whose namespaces are named prefix + name.
func New(prefix string) *Net { return &Net{Prefix: prefix} }

// NS returns the full name of a namespace of this network.
func (n *Net) NS(name string) string { return n.Prefix + name }

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// AddNS creates a namespace with its loopback up.
func (n *Net) AddNS(name string) error {
	full := n.NS(name)
	if err := ip("netns", "add", full); err != nil {
		return err
	}
	n.mu.Lock()
	n.names = append(n.names, full)
	n.mu.Unlock()
	return ip("-n", full, "link", "set", "lo", "up")
}

// Veth connects two namespaces with a veth pair and brings both ends up.
func (n *Net) Veth(ns1, if1, ns2, if2 string) error {
	if err := ip("link", "add", if1, "netns", n.NS(ns1), "type", "veth", "peer", "name", if2, "netns", n.NS(ns2)); err != nil {
		return err
	}
	if err := ip("-n", n.NS(ns1), "link", "set", if1, "up"); err != nil {
		return err
	}
	return ip("-n", n.NS(ns2), "link", "set", if2, "up")
}

// Addr adds an address (CIDR) to an interface.
func (n *Net) Addr(ns, ifname, cidr string) error {
	return ip("-n", n.NS(ns), "addr", "add", cidr, "dev", ifname)
}

// SetMAC changes an interface's MAC address.
func (n *Net) SetMAC(ns, ifname, mac string) error {
	if err := ip("-n", n.NS(ns), "link", "set", ifname, "down"); err != nil {
		return err
	}
	if err := ip("-n", n.NS(ns), "link", "set", ifname, "address", mac); err != nil {
		return err
	}
	return ip("-n", n.NS(ns), "link", "set", ifname, "up")
}

// Route adds a route in a namespace ("default" or a CIDR, via an address).
func (n *Net) Route(ns, dst, via string) error {
	return ip("-n", n.NS(ns), "route", "add", dst, "via", via)
}

// Forward turns IPv4 forwarding on in a namespace (a router).
func (n *Net) Forward(ns string) error {
	_, err := n.Run(context.Background(), ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	return err
}

// Run runs a command in a namespace and returns its combined output.
func (n *Net) Run(ctx context.Context, ns string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.NS(ns)}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s in %s: %w: %s", strings.Join(args, " "), ns, err, bytes.TrimSpace(out))
	}
	return out, nil
}

// Start starts a long-running command in a namespace, in its own process
// group, with output to logPath (appended). Close kills what is still running.
func (n *Net) Start(ns, logPath string, env []string, args ...string) (*Proc, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.NS(ns)}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = append(os.Environ(), env...)
	if logPath != "" {
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", args[0], ns, err)
	}
	p := &Proc{Cmd: cmd, Name: args[0], done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	n.mu.Lock()
	n.procs = append(n.procs, p)
	n.mu.Unlock()
	return p, nil
}

// KillPIDFile kills the process whose PID a daemon wrote to a file (dhclient
// forks into the background after its lease).
func KillPIDFile(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// Close kills every process it started and deletes every namespace it made.
func (n *Net) Close() error {
	n.mu.Lock()
	procs, names := n.procs, n.names
	n.procs, n.names = nil, nil
	n.mu.Unlock()
	for _, p := range procs {
		if !p.Exited() {
			p.Kill()
		}
	}
	var errs []error
	for i := len(names) - 1; i >= 0; i-- {
		// Processes left in the namespace (forked daemons) would keep it alive.
		if out, err := exec.Command("ip", "netns", "pids", names[i]).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				if pid, err := strconv.Atoi(f); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if err := ip("netns", "del", names[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
