package tftp

import (
	"bytes"
	"context"
	"crypto/rand"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name    string
		pkt     string
		wantErr bool
		file    string
		opts    string
	}{
		{"plain", "\x00\x01undionly.kpxe\x00octet\x00", false, "undionly.kpxe", ""},
		{"options", "\x00\x01ipxe.efi\x00OCTET\x00blksize\x001428\x00WindowSize\x008\x00tsize\x000\x00", false, "ipxe.efi", "blksize=1428,windowsize=8,tsize=0"},
		{"write", "\x00\x02x\x00octet\x00", false, "x", ""},
		{"no terminator", "\x00\x01file\x00octet", true, "", ""},
		{"option without value", "\x00\x01file\x00octet\x00blksize\x00", true, "", ""},
		{"bad mode", "\x00\x01file\x00mail\x00", true, "", ""},
		{"empty name", "\x00\x01\x00octet\x00", true, "", ""},
		{"data packet", "\x00\x03\x00\x01abc", true, "", ""},
		{"duplicate option", "\x00\x01f\x00octet\x00tsize\x000\x00tsize\x000\x00", true, "", ""},
		{"short", "\x00", true, "", ""},
	}
	for _, tt := range tests {
		r, err := ParseRequest([]byte(tt.pkt))
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: err %v, wantErr %v", tt.name, err, tt.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		var opts []string
		for _, n := range r.Order {
			opts = append(opts, n+"="+r.Options[n])
		}
		if r.Filename != tt.file || strings.Join(opts, ",") != tt.opts {
			t.Errorf("%s: got %q %v", tt.name, r.Filename, opts)
		}
	}
}

func TestClean(t *testing.T) {
	tests := map[string]string{
		"ipxe.efi": "ipxe.efi", "/ipxe.efi": "ipxe.efi", "lab\\vmlinuz": "lab/vmlinuz", "a//b/./c": "a/b/c",
		"../etc/passwd": "", "a/../../b": "", "/": "", "a\x00b": "", "..": "",
	}
	for in, want := range tests {
		if got := clean(in); got != want {
			t.Errorf("clean(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("\x00\x01ipxe.efi\x00octet\x00blksize\x001428\x00windowsize\x008\x00"))
	f.Add([]byte("\x00\x02a\x00netascii\x00"))
	f.Add([]byte("\x00\x01../../etc/passwd\x00octet\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRequest(b)
		if err != nil {
			return
		}
		if r.Filename == "" || len(r.Order) != len(r.Options) {
			t.Fatalf("inconsistent request %+v", r)
		}
		if p := clean(r.Filename); p != "" && (strings.HasPrefix(p, "/") || strings.Contains("/"+p+"/", "/../")) {
			t.Fatalf("clean(%q) = %q escapes the root", r.Filename, p)
		}
	})
}

type transfers struct {
	mu   sync.Mutex
	done []string
}

func startServer(t *testing.T, roots ...string) (*Server, *transfers) {
	t.Helper()
	tr := &transfers{}
	s, err := NewServer(Config{Listen: "127.0.0.1:0", Roots: roots, Timeout: 200 * time.Millisecond, Retries: 3, Metrics: &Metrics{},
		Done: func(_ netip.Addr, file string, n int64, err error) {
			tr.mu.Lock()
			defer tr.mu.Unlock()
			if err != nil {
				tr.done = append(tr.done, file+": "+err.Error())
			} else {
				tr.done = append(tr.done, file)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	<-s.Ready()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Error(err)
		}
	})
	return s, tr
}

// atftp is the one Debian TFTP client that sends windowsize (RFC 7440).
func atftp(t *testing.T, s *Server, file, out string, opts ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("atftp"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("atftp is not installed: apt-get install atftp (make test installs it)")
		}
		t.Skip("atftp not installed")
	}
	_, port, _ := net.SplitHostPort(s.Addr().String())
	args := []string{"--trace", "--verbose"}
	for _, o := range opts {
		args = append(args, "--option", o)
	}
	args = append(args, "-g", "-r", file, "-l", out, "127.0.0.1", port)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := exec.CommandContext(ctx, "atftp", args...).CombinedOutput()
	return string(b), err
}

func TestTransfersWithAtftp(t *testing.T) {
	root := t.TempDir()
	content := make([]byte, 3*1428*8+100) // several windows and a short last block
	rand.Read(content)
	os.WriteFile(filepath.Join(root, "ipxe.efi"), content, 0o644)
	exact := make([]byte, 1428*4) // a multiple of blksize: ends with an empty block
	rand.Read(exact)
	os.MkdirAll(filepath.Join(root, "lab"), 0o755)
	os.WriteFile(filepath.Join(root, "lab", "exact"), exact, 0o644)
	os.WriteFile(filepath.Join(filepath.Dir(root), "secret"), []byte("secret"), 0o644)
	s, tr := startServer(t, root)

	tests := []struct {
		name, file string
		opts       []string
		want       []byte
		trace      []string
	}{
		{"windowsize and blksize", "ipxe.efi", []string{"blksize 1428", "windowsize 8", "tsize 0"}, content,
			[]string{"received OACK", "blksize: 1428", "windowsize: 8", "tsize: " + strconv.Itoa(len(content))}},
		{"no options (RFC 1350)", "ipxe.efi", nil, content, nil},
		{"blksize capped", "lab/exact", []string{"blksize 9000"}, exact, []string{"received OACK <blksize: 1468"}},
		{"exact multiple of blksize", "lab/exact", []string{"blksize 1428", "windowsize 4"}, exact, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			trace, err := atftp(t, s, tt.file, out, tt.opts...)
			if err != nil {
				t.Fatalf("atftp: %v\n%s", err, trace)
			}
			got, _ := os.ReadFile(out)
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("got %d bytes, want %d", len(got), len(tt.want))
			}
			for _, w := range tt.trace {
				if !strings.Contains(trace, w) {
					t.Errorf("trace lacks %q:\n%s", w, trace)
				}
			}
		})
	}
	for _, bad := range []string{"../secret", "lab/../../secret", "missing.efi"} {
		out := filepath.Join(t.TempDir(), "out")
		trace, err := atftp(t, s, bad, out)
		if err == nil && !strings.Contains(trace, "ERROR") {
			t.Errorf("%s: transfer allowed:\n%s", bad, trace)
		}
		if b, _ := os.ReadFile(out); len(b) > 0 {
			t.Errorf("%s: got content %q", bad, b)
		}
	}
	// The server reports a refused transfer just after the client has its error.
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		tr.mu.Lock()
		n := len(tr.done)
		tr.mu.Unlock()
		if n >= 7 {
			break
		}
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.done) < 7 || !strings.Contains(strings.Join(tr.done, "\n"), "../secret: access violation") {
		t.Errorf("transfers reported: %q", tr.done)
	}
	m := s.cfg.Metrics
	wantBytes := int64(2*len(content) + 2*len(exact))
	if m.ok.Load() != 4 || m.failed.Load() < 3 || m.bytes.Load() != wantBytes {
		t.Errorf("metrics: %d ok, %d failed, %d bytes; want 4, at least 3, %d", m.ok.Load(), m.failed.Load(), m.bytes.Load(), wantBytes)
	}
}

// connect gives ss a socket sending to a new loopback socket, which it
// returns, with segmentation offload when gso is set.
func connect(t *testing.T, ss *session, gso bool) *net.UDPConn {
	t.Helper()
	recv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { recv.Close() })
	if ss.conn, err = net.DialUDP("udp4", nil, recv.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ss.conn.Close() })
	if gso {
		if ss.enableGSO(); !ss.gso {
			t.Skip("this kernel refuses UDP_SEGMENT (Linux before 4.18)")
		}
	}
	return recv
}

// TestWindowWrite checks that a window sent with segmentation offload reaches
// the client as one datagram per block, the same as one write per block,
// including a short last block, an empty one, and a window larger than one
// segmented write may carry.
func TestWindowWrite(t *testing.T) {
	tests := []struct {
		name    string
		blksize int
		sizes   []int // payload of each block
	}{
		{"full window", 1428, []int{1428, 1428, 1428, 1428}},
		{"short last block", 1428, []int{1428, 1428, 100}},
		{"empty last block", 512, []int{512, 512, 0}},
		{"one block", 512, []int{7}},
		{"more than 64 segments", 8, make([]int, 70)},
	}
	for _, tt := range tests {
		for _, gso := range []bool{true, false} {
			t.Run(tt.name+"/gso="+strconv.FormatBool(gso), func(t *testing.T) {
				ss := &session{blksize: tt.blksize}
				recv := connect(t, ss, gso)
				var pkts []byte
				var want [][]byte
				for i, n := range tt.sizes {
					if i < len(tt.sizes)-1 {
						n = tt.blksize // only the last block may be short
					}
					p := append([]byte{0, opDATA, 0, byte(i + 1)}, bytes.Repeat([]byte{byte('a' + i%26)}, n)...)
					pkts = append(pkts, p...)
					want = append(want, p)
				}
				if err := ss.write(pkts, 4+tt.blksize); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 70000)
				for i, w := range want {
					recv.SetReadDeadline(time.Now().Add(2 * time.Second))
					n, err := recv.Read(buf)
					if err != nil {
						t.Fatalf("datagram %d: %v", i+1, err)
					}
					if !bytes.Equal(buf[:n], w) {
						t.Fatalf("datagram %d: %d bytes %q, want %d bytes", i+1, n, buf[:min(n, 8)], len(w))
					}
				}
				recv.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
				if n, err := recv.Read(buf); err == nil {
					t.Fatalf("an extra datagram of %d bytes", n)
				}
			})
		}
	}
}

// TestFileShrinksDuringTransfer: a file shorter than the size the transfer
// started with ends at its first short block, which carries no other block's
// header, and nothing follows it (with and without segmentation offload).
func TestFileShrinksDuringTransfer(t *testing.T) {
	for _, gso := range []bool{true, false} {
		t.Run("gso="+strconv.FormatBool(gso), func(t *testing.T) {
			ss := &session{blksize: 8, window: 4, timeout: time.Second, retries: 1}
			client := connect(t, ss, gso)
			content := []byte("0123456789abcdefWXYZ") // 20 bytes: blocks of 8, 8 and 4
			done := make(chan error, 1)
			go func() {
				_, err := ss.send(context.Background(), bytes.NewReader(content), 100) // the size it had when the transfer began
				done <- err
			}()
			want := []string{"01234567", "89abcdef", "WXYZ"}
			buf := make([]byte, 1500)
			for i, w := range want {
				client.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, from, err := client.ReadFromUDP(buf)
				if err != nil {
					t.Fatalf("block %d: %v", i+1, err)
				}
				if got := string(buf[4:n]); buf[3] != byte(i+1) || got != w {
					t.Fatalf("block %d: number %d, data %q, want %q", i+1, buf[3], got, w)
				}
				if i == len(want)-1 {
					client.WriteToUDP([]byte{0, opACK, 0, byte(i + 1)}, from)
				}
			}
			if err := <-done; err != nil {
				t.Fatalf("send: %v", err)
			}
			client.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if n, err := client.Read(buf); err == nil {
				t.Fatalf("a datagram after the short block: %q", buf[:n])
			}
		})
	}
}
