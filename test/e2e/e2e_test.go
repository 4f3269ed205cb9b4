// Package e2e tests drover end to end with real third-party peers (ISC
// dhclient and dhcrelay, atftp, curl, perfdhcp) in network namespaces the
// tests create. They need root. With CI=true a missing prerequisite fails the
// test with what to install; elsewhere it skips.
package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// droverBin is the binary under test, built once by TestMain.
var droverBin string

func TestMain(m *testing.M) {
	if helper := os.Getenv("DROVER_E2E_HELPER"); helper != "" {
		os.Exit(runHelper(helper, os.Args))
	}
	dir, err := os.MkdirTemp("", "drover-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	droverBin = filepath.Join(dir, "drover")
	out, err := exec.Command("go", "build", "-o", droverBin, "github.com/drover/drover/cmd/drover").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build drover: %v\n%s", err, out)
		os.Exit(1)
	}
	// The install agent goes into the lab's initrd: static, as make build makes it.
	agent := exec.Command("go", "build", "-ldflags=-s -w", "-o", filepath.Join(dir, "drover-agent"), "github.com/drover/drover/cmd/drover-agent")
	agent.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := agent.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build drover-agent: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// require checks the prerequisites of an end-to-end test.
func require(t *testing.T, tools map[string]string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (network namespaces need it)")
	}
	for bin, pkg := range tools {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, fmt.Sprintf("%s (apt-get install %s)", bin, pkg))
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "end-to-end test needs: " + strings.Join(missing, ", ") + "; `make test` installs the packages"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func randomID() string {
	b := make([]byte, 2)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// runHelper runs code that must execute inside a namespace, re-executed from
// the test binary: the test process itself stays in the host namespace.
func runHelper(name string, args []string) int {
	switch name {
	case "forge-direct":
		return forgeDirect(os.Getenv("DROVER_E2E_SERVER"), os.Getenv("DROVER_E2E_MAC"))
	}
	fmt.Fprintln(os.Stderr, "unknown helper", name)
	return 2
}

// forgeDirect is a client on the server's own segment that claims a switch
// port in option 82 without going through a relay. It prints what it got.
func forgeDirect(server, macText string) int {
	mac, _ := net.ParseMAC(macText)
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{Port: 68})
	if err != nil {
		fmt.Println("listen:", err)
		return 1
	}
	defer conn.Close()
	req, _ := dhcpv4.NewDiscovery(mac, func(d *dhcpv4.DHCPv4) {
		d.UpdateOption(dhcpv4.OptRelayAgentInfo(
			dhcpv4.OptGeneric(dhcpv4.AgentCircuitIDSubOption, []byte("swp1")),
			dhcpv4.OptGeneric(dhcpv4.AgentRemoteIDSubOption, []byte("p1-tor1"))))
	})
	if _, err := conn.WriteToUDP(req.ToBytes(), &net.UDPAddr{IP: net.ParseIP(server), Port: 67}); err != nil {
		fmt.Println("send:", err)
		return 1
	}
	buf := make([]byte, 1500)
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			fmt.Println("no-offer")
			return 0
		}
		if rep, err := dhcpv4.FromBytes(buf[:n]); err == nil && rep.TransactionID == req.TransactionID {
			fmt.Println("offer", rep.YourIPAddr)
			return 0
		}
	}
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
