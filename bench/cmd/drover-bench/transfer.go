package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/drover/drover/internal/netns"
)

// TFTPReport compares TFTP servers: 50 concurrent atftp clients fetching ipxe.efi.
type TFTPReport struct {
	File    string                 `json:"file"`
	Bytes   int64                  `json:"bytes"`
	Clients int                    `json:"clients"`
	Results map[string]TFTPFigures `json:"results"` // by "server" and "server+delay"
	// Single is one client alone through the delay, by server: the window's
	// gain when the CPUs are not the limit.
	Single map[string]TFTPFigures `json:"single_client_via_delay"`
}

// TFTPFigures is one server's transfer of the file to every client: the
// median of the runs by aggregate rate, with the runs' smallest and largest.
type TFTPFigures struct {
	Seconds float64 `json:"seconds"`
	MBps    float64 `json:"aggregate_mb_per_s"`
	MBpsMin float64 `json:"aggregate_mb_per_s_min"`
	MBpsMax float64 `json:"aggregate_mb_per_s_max"`
	Failed  int     `json:"failed"`
	// CPUSeconds is the server's CPU time over the run, ProxyCPUSeconds the delay proxy's.
	CPUSeconds      float64 `json:"server_cpu_seconds"`
	ProxyCPUSeconds float64 `json:"proxy_cpu_seconds,omitempty"`
	// BusyPct is how busy the machine's CPUs were over the run (server,
	// proxy, the atftp clients and their start-up, the kernel).
	BusyPct float64 `json:"machine_cpu_busy_percent"`
}

const (
	tftpClients = 50
	tftpRuns    = 5
)

// minimalDesign is enough for drover serve to start.
const minimalDesign = `zone: b
environment: test
domain: b.test
pods:
  p1:
    networks:
      boot: {subnet: 10.201.0.0/24, gateway: 10.201.0.1}
`

func benchTFTP(ctx context.Context, e *env) (*TFTPReport, error) {
	dir := filepath.Join(e.work, "tftp")
	os.MkdirAll(filepath.Join(dir, "design"), 0o755)
	os.WriteFile(filepath.Join(dir, "design", "b.yaml"), []byte(minimalDesign), 0o644)
	src, err := os.ReadFile("/usr/lib/ipxe/ipxe.efi")
	if err != nil {
		return nil, fmt.Errorf("ipxe.efi (apt-get install ipxe): %w", err)
	}
	root := filepath.Join(dir, "root")
	os.MkdirAll(root, 0o755)
	os.WriteFile(filepath.Join(root, "ipxe.efi"), src, 0o644)
	// The clients write what they fetch to memory, so that the disk's
	// journal is not part of any server's figure.
	got, err := os.MkdirTemp("/dev/shm", "drover-bench-tftp-")
	if err != nil {
		got = dir
	}
	defer os.RemoveAll(got)
	rep := &TFTPReport{File: "ipxe.efi", Bytes: int64(len(src)), Clients: tftpClients, Results: map[string]TFTPFigures{}, Single: map[string]TFTPFigures{}}
	servers := []struct {
		name  string
		start func(p *pair) (*netns.Proc, error)
	}{
		{"drover", func(p *pair) (*netns.Proc, error) {
			proc, _, err := startDrover(e, p, filepath.Join(dir, "design"), "--tftp-root", root, "--tftp-max-window", "16")
			return proc, err
		}},
		{"tftpd-hpa", func(p *pair) (*netns.Proc, error) {
			proc, err := p.net.Start("srv", filepath.Join(dir, "tftpd.log"), nil, "in.tftpd", "-L", "-s", root, "-a", "0.0.0.0:69")
			if err != nil {
				return nil, err
			}
			return proc, waitUDP(p, proc, 69)
		}},
		{"dnsmasq", func(p *pair) (*netns.Proc, error) {
			proc, err := p.net.Start("srv", filepath.Join(dir, "dnsmasq.log"), nil, "dnsmasq", "-d", "--port=0", "--enable-tftp",
				"--tftp-root="+root, "--pid-file="+filepath.Join(dir, "dnsmasq-tftp.pid"), "--log-facility=-", "--tftp-max=1000")
			if err != nil {
				return nil, err
			}
			return proc, waitUDP(p, proc, 69)
		}},
	}
	for _, delayed := range []bool{false, true} {
		for _, s := range servers {
			p, proc, err := startPeer("dvt", s.name, s.start)
			if err != nil {
				return nil, err
			}
			target, port, name := p.srvIP.String(), "69", s.name
			var proxy *netns.Proc
			if delayed {
				// The proxy ends with the pair: p.close kills what was started in it.
				proxy, err = p.net.Start("ld", filepath.Join(dir, "proxy.log"), nil, e.self, "udp-delay-proxy", "-listen", "127.0.0.1:6969",
					"-server", p.srvIP.String()+":69", "-delay", "1ms")
				if err != nil {
					proc.Stop(5 * time.Second)
					p.close()
					return nil, fmt.Errorf("delay proxy: %w", err)
				}
				time.Sleep(300 * time.Millisecond)
				target, port, name = "127.0.0.1", "6969", name+" via 1 ms delay"
			}
			measure := func(clients int) TFTPFigures {
				var runs []TFTPFigures
				for run := 0; run < tftpRuns; run++ {
					cpu, proxyCPU := processTreeCPU(proc.Cmd.Process.Pid), 0.0
					if proxy != nil {
						proxyCPU = processTreeCPU(proxy.Cmd.Process.Pid)
					}
					fig := runTFTPClients(ctx, p, target, port, got, src, clients)
					fig.CPUSeconds = processTreeCPU(proc.Cmd.Process.Pid) - cpu
					if proxy != nil {
						fig.ProxyCPUSeconds = processTreeCPU(proxy.Cmd.Process.Pid) - proxyCPU
					}
					runs = append(runs, fig)
				}
				fig := medianTFTP(runs)
				e.log.Info("tftp", "server", name, "clients", clients, "seconds", fig.Seconds, "MB/s", fig.MBps, "min", fig.MBpsMin, "max", fig.MBpsMax,
					"cpu_s", fig.CPUSeconds, "proxy_cpu_s", fig.ProxyCPUSeconds, "busy%", fig.BusyPct, "failed", fig.Failed)
				return fig
			}
			rep.Results[name] = measure(tftpClients)
			if delayed {
				rep.Single[s.name] = measure(1)
			}
			proc.Stop(5 * time.Second)
			p.close()
		}
	}
	return rep, nil
}

// medianTFTP is the run with the median aggregate rate, with the smallest
// and largest rate of all runs and every run's failures.
func medianTFTP(runs []TFTPFigures) TFTPFigures {
	sort.Slice(runs, func(i, j int) bool { return runs[i].MBps < runs[j].MBps })
	m := runs[len(runs)/2]
	m.MBpsMin, m.MBpsMax, m.Failed = runs[0].MBps, runs[len(runs)-1].MBps, 0
	for _, r := range runs {
		m.Failed += r.Failed
	}
	return m
}

// startPeer makes a fresh namespace pair and starts a server under test in it.
func startPeer(prefix, name string, start func(*pair) (*netns.Proc, error)) (*pair, *netns.Proc, error) {
	p, err := newPair(fmt.Sprintf("%s%d-", prefix, os.Getpid()%10000))
	if err != nil {
		return nil, nil, err
	}
	proc, err := start(p)
	if err != nil {
		p.close()
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	return p, proc, nil
}

// runTFTPClients starts n atftp clients, waits until every one is loaded,
// connected and has its options set (atftp's interactive mode, fed on its
// standard input), then gives them all their get at once and times from
// there until all have exited. Starting 50 of them through `ip netns exec`
// took about 1.4 s of CPU here, more than drover's 50 transfers with their
// clients, so it stays out of the figure, for every server alike.
func runTFTPClients(ctx context.Context, p *pair, target, port, dir string, want []byte, n int) TFTPFigures {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	type client struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		out   string
		err   error
	}
	clients := make([]*client, n)
	var ready sync.WaitGroup
	for i := range clients {
		c := &client{out: filepath.Join(dir, fmt.Sprintf("got-%d", i))}
		clients[i] = c
		os.Remove(c.out)
		c.cmd = exec.CommandContext(cctx, "ip", "netns", "exec", p.net.NS("ld"), "atftp")
		c.stdin, c.err = c.cmd.StdinPipe()
		var stdout io.ReadCloser
		if c.err == nil {
			stdout, c.err = c.cmd.StdoutPipe()
		}
		c.cmd.Stderr = c.cmd.Stdout
		if c.err == nil {
			c.err = c.cmd.Start()
		}
		if c.err != nil {
			continue
		}
		fmt.Fprintf(c.stdin, "connect %s %s\noption blksize 1428\noption windowsize 16\nstatus\n", target, port)
		ready.Add(1)
		go func() {
			// "status" ends with the last command's name: the client has
			// read everything before it and waits for the next line.
			sc := bufio.NewScanner(stdout)
			seen := false
			for sc.Scan() {
				if !seen && strings.HasPrefix(sc.Text(), "Last command:") {
					seen = true
					ready.Done()
				}
			}
			if !seen {
				ready.Done()
			}
		}()
	}
	ready.Wait()
	busy0, idle0 := cpuTimes()
	start := time.Now()
	for _, c := range clients {
		if c.err == nil {
			fmt.Fprintf(c.stdin, "get ipxe.efi %s\nquit\n", c.out)
			c.stdin.Close()
		}
	}
	for _, c := range clients {
		if c.err == nil {
			c.err = c.cmd.Wait()
		}
	}
	secs := time.Since(start).Seconds()
	busy1, idle1 := cpuTimes()
	failed := 0
	for _, c := range clients {
		if got, _ := os.ReadFile(c.out); c.err != nil || !bytes.Equal(got, want) {
			failed++
		}
	}
	return TFTPFigures{Seconds: secs, MBps: float64(len(want)*(n-failed)) / secs / 1e6, Failed: failed,
		BusyPct: 100 * (busy1 - busy0) / (busy1 - busy0 + idle1 - idle0)}
}

// udpDelayProxy forwards TFTP between clients and a server, delaying every
// packet by a fixed time each way. TFTP answers from a new port per transfer
// (its transfer id), so each server port gets its own client-facing socket.
func udpDelayProxy(args []string) int {
	fs := flag.NewFlagSet("udp-delay-proxy", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:6969", "client-facing address")
	server := fs.String("server", "", "server address")
	delay := fs.Duration("delay", time.Millisecond, "added each way")
	fs.Parse(args)
	srvAddr, err := net.ResolveUDPAddr("udp4", *server)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	front, err := net.ListenUDP("udp4", mustUDP(*listen))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	toServer, toClient := newDelayLine(*delay), newDelayLine(*delay)
	sessions := map[string]*net.UDPConn{} // client address -> upstream socket
	buf := make([]byte, 70000)
	for {
		n, client, err := front.ReadFromUDP(buf)
		if err != nil {
			return 0
		}
		pkt := append([]byte(nil), buf[:n]...)
		up := sessions[client.String()]
		if up == nil {
			if up, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero}); err != nil {
				continue
			}
			sessions[client.String()] = up
			go relayBack(up, client, toServer, toClient)
		}
		toServer.push(func() { up.WriteToUDP(pkt, srvAddr) })
	}
}

// relayBack copies server packets to the client, each server port (transfer
// id) through a client-facing socket of its own, and the client's answers back.
//
// A burst the server sent in one segmented write (UDP GSO, drover's TFTP
// windows) is read in one piece (UDP GRO) and sent on the same way, so the
// client still gets one datagram per block, each 1 ms late, while the proxy
// pays a system call per burst: per packet, the proxy's own CPU time (on
// the 2 cores it shares with server and clients) was what bounded the
// windowed transfer, not the delay.
func relayBack(up *net.UDPConn, client *net.UDPAddr, toServer, toClient *delayLine) {
	fronts := map[int]*net.UDPConn{}
	// Bursts are up to 64 KB: a fresh copy of each cost the proxy page
	// faults and copies that the servers' figures should not carry.
	bufs := sync.Pool{New: func() any { return make([]byte, 70000) }}
	oob := make([]byte, 64)
	if raw, err := up.SyscallConn(); err == nil {
		raw.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), udpLevel, udpGRO, 1) })
	}
	for {
		up.SetReadDeadline(time.Now().Add(30 * time.Second))
		buf := bufs.Get().([]byte)
		n, oobn, _, from, err := up.ReadMsgUDP(buf, oob)
		if err != nil {
			return
		}
		pkt := buf[:n]
		segment := groSize(oob[:oobn])
		f := fronts[from.Port]
		if f == nil {
			if f, err = net.ListenUDP("udp4", &net.UDPAddr{IP: client.IP}); err != nil {
				continue
			}
			fronts[from.Port] = f
			go func(f *net.UDPConn, srvPort *net.UDPAddr) {
				b := make([]byte, 70000)
				for {
					f.SetReadDeadline(time.Now().Add(30 * time.Second))
					n, _, err := f.ReadFromUDP(b)
					if err != nil {
						return
					}
					p := append([]byte(nil), b[:n]...)
					toServer.push(func() { up.WriteToUDP(p, srvPort) })
				}
			}(f, from)
		}
		if segment > 0 && segment < n {
			toClient.push(func() { f.WriteMsgUDP(pkt, gsoControl(segment), client); bufs.Put(buf) })
		} else {
			toClient.push(func() { f.WriteToUDP(pkt, client); bufs.Put(buf) })
		}
	}
}

// UDP segmentation offload, in both directions (udp(7)).
const (
	udpLevel   = 17  // SOL_UDP
	udpSegment = 103 // UDP_SEGMENT: send a buffer as datagrams of this size
	udpGRO     = 104 // UDP_GRO: receive coalesced datagrams, with their size
)

// groSize is the datagram size of a coalesced read, or 0.
func groSize(oob []byte) int {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for _, m := range msgs {
		if m.Header.Level == udpLevel && m.Header.Type == udpGRO && len(m.Data) >= 4 {
			return int(binary.NativeEndian.Uint32(m.Data))
		}
	}
	return 0
}

// gsoControl asks the kernel to send a buffer as datagrams of size bytes.
func gsoControl(size int) []byte {
	b := make([]byte, syscall.CmsgSpace(2))
	h := (*syscall.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = udpLevel, udpSegment
	h.SetLen(syscall.CmsgLen(2))
	binary.NativeEndian.PutUint16(b[syscall.CmsgLen(0):], uint16(size))
	return b
}

// delayLine sends packets after a fixed delay, in the order they came:
// reordering would hurt windowed TFTP in a way a real link does not.
type delayLine struct {
	delay time.Duration
	ch    chan delayed
}

type delayed struct {
	due  time.Time
	send func()
}

func newDelayLine(d time.Duration) *delayLine {
	l := &delayLine{delay: d, ch: make(chan delayed, 1<<16)}
	go func() {
		for it := range l.ch {
			time.Sleep(time.Until(it.due))
			it.send()
		}
	}()
	return l
}

func (l *delayLine) push(send func()) { l.ch <- delayed{due: time.Now().Add(l.delay), send: send} }

func mustUDP(s string) *net.UDPAddr {
	a, err := net.ResolveUDPAddr("udp4", s)
	if err != nil {
		panic(err)
	}
	return a
}

// HTTPReport compares serving a large artifact over HTTP.
type HTTPReport struct {
	Bytes   int64                  `json:"bytes"`
	Clients int                    `json:"clients"`
	Results map[string]HTTPFigures `json:"results"`
}

// HTTPFigures is one server's delivery of the file to every client.
type HTTPFigures struct {
	Seconds    float64 `json:"seconds"`
	MBps       float64 `json:"aggregate_mb_per_s"`
	Failed     int     `json:"failed"`
	CPUSeconds float64 `json:"server_cpu_seconds"`
}

const httpClients = 50

func benchHTTP(ctx context.Context, e *env) (*HTTPReport, error) {
	size := int64(100 << 20)
	if e.quick {
		size = 10 << 20
	}
	dir := filepath.Join(e.work, "http")
	os.MkdirAll(filepath.Join(dir, "design"), 0o755)
	os.WriteFile(filepath.Join(dir, "design", "b.yaml"), []byte(minimalDesign), 0o644)
	art := filepath.Join(dir, "artifacts")
	os.MkdirAll(art, 0o755)
	f, err := os.Create(filepath.Join(art, "initrd.img"))
	if err != nil {
		return nil, err
	}
	io.CopyN(f, rand.Reader, size)
	f.Close()
	nginxConf := filepath.Join(dir, "nginx.conf")
	os.WriteFile(nginxConf, []byte(fmt.Sprintf(`daemon off;
worker_processes auto;
pid %s/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path %s;
  proxy_temp_path %s;
  fastcgi_temp_path %s;
  uwsgi_temp_path %s;
  scgi_temp_path %s;
  server { listen 8081; root %s; location /artifacts/ { alias %s/; } }
}
`, dir, dir, dir, dir, dir, dir, dir, art)), 0o644)
	rep := &HTTPReport{Bytes: size, Clients: httpClients, Results: map[string]HTTPFigures{}}
	for _, s := range []struct {
		name, port string
		start      func(p *pair) (*netns.Proc, error)
	}{
		{"drover", "8080", func(p *pair) (*netns.Proc, error) {
			proc, _, err := startDrover(e, p, filepath.Join(dir, "design"), "--artifacts", art)
			return proc, err
		}},
		{"nginx", "8081", func(p *pair) (*netns.Proc, error) {
			proc, err := p.net.Start("srv", filepath.Join(dir, "nginx.log"), nil, "nginx", "-c", nginxConf, "-p", dir)
			if err != nil {
				return nil, err
			}
			for i := 0; i < 100; i++ {
				if _, err := p.net.Run(ctx, "srv", "curl", "-sf", "-o", "/dev/null", "-r", "0-0", "http://127.0.0.1:8081/artifacts/initrd.img"); err == nil {
					return proc, nil
				}
				time.Sleep(50 * time.Millisecond)
			}
			return nil, fmt.Errorf("nginx did not start")
		}},
	} {
		p, proc, err := startPeer("dvh", s.name, s.start)
		if err != nil {
			return nil, err
		}
		cpu := processTreeCPU(proc.Cmd.Process.Pid)
		out, err := exec.CommandContext(ctx, "ip", "netns", "exec", p.net.NS("ld"), e.self, "http-client", "-url",
			"http://"+p.srvIP.String()+":"+s.port+"/artifacts/initrd.img", "-n", strconv.Itoa(httpClients), "-size", strconv.FormatInt(size, 10)).Output()
		var fig HTTPFigures
		if err == nil {
			err = json.Unmarshal(out, &fig)
		}
		fig.CPUSeconds = processTreeCPU(proc.Cmd.Process.Pid) - cpu
		proc.Stop(5 * time.Second)
		p.close()
		if err != nil {
			return nil, fmt.Errorf("%s clients: %w", s.name, err)
		}
		rep.Results[s.name] = fig
		e.log.Info("http", "server", s.name, "MB/s", fig.MBps, "cpu_s", fig.CPUSeconds, "failed", fig.Failed)
	}
	return rep, nil
}

// processTreeCPU is the CPU seconds used by a process and its children (nginx workers).
func processTreeCPU(pid int) float64 {
	total := 0.0
	var walk func(int)
	walk = func(p int) {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p)); err == nil {
			s := string(b)
			f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
			// Its own time and that of the children it has reaped (tftpd-hpa forks per transfer).
			for _, i := range []int{11, 12, 13, 14} {
				if i < len(f) {
					v, _ := strconv.ParseFloat(f[i], 64)
					total += v / 100
				}
			}
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p, p)); err == nil {
			for _, c := range strings.Fields(string(b)) {
				if cp, err := strconv.Atoi(c); err == nil {
					walk(cp)
				}
			}
		}
	}
	walk(pid)
	return total
}

// httpClient downloads a URL with n concurrent clients and prints figures as JSON.
func httpClient(args []string) int {
	fs := flag.NewFlagSet("http-client", flag.ExitOnError)
	u := fs.String("url", "", "what to fetch")
	n := fs.Int("n", 50, "concurrent clients")
	size := fs.Int64("size", 0, "expected size")
	fs.Parse(args)
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	start := time.Now()
	for i := 0; i < *n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Transport: &http.Transport{DisableCompression: true}}
			resp, err := c.Get(*u)
			ok := err == nil
			if ok {
				got, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				ok = resp.StatusCode == 200 && got == *size
			}
			if !ok {
				mu.Lock()
				failed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	json.NewEncoder(os.Stdout).Encode(HTTPFigures{Seconds: secs, MBps: float64(*size) * float64(*n-failed) / secs / 1e6, Failed: failed})
	return 0
}

func (t *TFTPReport) markdown(md *strings.Builder) {
	fmt.Fprintf(md, "## TFTP\n\n%[1]d concurrent atftp clients fetch %[2]s (%[3]d bytes) with `blksize 1428` and `windowsize 16` (only drover grants windowsize; the others answer lock-step). Each atftp is started first in its interactive mode, connects, sets its options and waits; the clock starts when all of them are given their `get` at once and stops when the last has exited (starting %[1]d atftp processes through `ip netns exec` takes about 1.4 s of CPU on this machine, more than drover's %[1]d transfers with their clients, so it is kept out of every server's figure). The clients write what they fetch to memory (/dev/shm). Then again through a UDP proxy of our own that delays every packet by 1 ms each way (this kernel has no netem); a burst a server sends in one segmented write (UDP GSO: drover's windows) the proxy reads in one piece (UDP GRO) and sends on the same way, so the client still gets one datagram per block, each 1 ms late. %[4]d runs per server: the median by aggregate rate, with the runs' smallest and largest; failures summed over the runs. Server CPU is the server process's (tftpd-hpa's forked transfer processes are not seen), proxy CPU the delay proxy's, machine CPU busy all of the machine's CPUs over the run: the atftp clients take most of it.\n\n", t.Clients, t.File, t.Bytes, tftpRuns)
	fmt.Fprintf(md, "| server | all clients done | aggregate (median) | min-max | server CPU | proxy CPU | machine CPU busy | failed |\n|---|---|---|---|---|---|---|---|\n")
	for _, name := range []string{"drover", "tftpd-hpa", "dnsmasq", "drover via 1 ms delay", "tftpd-hpa via 1 ms delay", "dnsmasq via 1 ms delay"} {
		if f, ok := t.Results[name]; ok {
			proxy := "-"
			if f.ProxyCPUSeconds > 0 {
				proxy = fmt.Sprintf("%.2f s", f.ProxyCPUSeconds)
			}
			fmt.Fprintf(md, "| %s | %.2f s | %.1f MB/s | %.1f-%.1f | %.2f s | %s | %.0f %% | %d |\n", name, f.Seconds, f.MBps, f.MBpsMin, f.MBpsMax, f.CPUSeconds, proxy, f.BusyPct, f.Failed)
		}
	}
	if len(t.Single) > 0 {
		fmt.Fprintf(md, "\nOne client alone through the delay (%d runs, median):\n\n| server | transfer | rate |\n|---|---|---|\n", tftpRuns)
		for _, name := range []string{"drover", "tftpd-hpa", "dnsmasq"} {
			if f, ok := t.Single[name]; ok {
				fmt.Fprintf(md, "| %s | %.3f s | %.2f MB/s |\n", name, f.Seconds, f.MBps)
			}
		}
		if h := t.Single["tftpd-hpa"].MBps; h > 0 {
			fmt.Fprintf(md, "\ndrover / tftpd-hpa, one client through the delay: %.1fx.\n", t.Single["drover"].MBps/h)
		}
	}
	if h := t.Results["tftpd-hpa via 1 ms delay"].MBps; h > 0 {
		fmt.Fprintf(md, "\ndrover / tftpd-hpa through the delay: %.1fx (target: 8x).\n", t.Results["drover via 1 ms delay"].MBps/h)
	}
	md.WriteString("\n")
}

func (h *HTTPReport) markdown(md *strings.Builder) {
	fmt.Fprintf(md, "## HTTP artifacts\n\n%d concurrent clients download a %d MB initrd.\n\n| server | all clients done | aggregate | server CPU | failed |\n|---|---|---|---|---|\n", h.Clients, h.Bytes>>20)
	for _, name := range []string{"drover", "nginx"} {
		if f, ok := h.Results[name]; ok {
			fmt.Fprintf(md, "| %s | %.2f s | %.0f MB/s | %.1f s | %d |\n", name, f.Seconds, f.MBps, f.CPUSeconds, f.Failed)
		}
	}
	if n := h.Results["nginx"].MBps; n > 0 {
		fmt.Fprintf(md, "\ndrover / nginx: %.2fx (target: 0.9x).\n", h.Results["drover"].MBps/n)
	}
	md.WriteString("\n")
}

// cpuTimes is the machine's CPU time, all CPUs, busy and idle (with I/O
// wait), in clock ticks from /proc/stat.
func cpuTimes() (busy, idle float64) {
	b, _ := os.ReadFile("/proc/stat")
	f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
	for i, v := range f[1:] {
		x, _ := strconv.ParseFloat(v, 64)
		if i == 3 || i == 4 {
			idle += x
		} else {
			busy += x
		}
	}
	return busy, idle
}
