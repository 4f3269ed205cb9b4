package tftp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/drover/drover/internal/files"
)

// Config configures the TFTP server.
type Config struct {
	Listen string   // UDP address (default 0.0.0.0:69)
	Roots  []string // directories searched in order; files never leave them
	// LinkRoot is the one root whose top-level symlinks are served even when
	// they lead out of it: the iPXE directory, where Debian's ipxe package
	// ships its loaders as links to /boot. Every other root refuses them.
	LinkRoot     string
	MaxTransfers int           // concurrent transfers (default 256)
	Timeout      time.Duration // retransmit timeout unless the client asks (default 1s)
	Retries      int           // retransmissions before giving up (default 5)
	MaxBlockSize int           // largest blksize granted (default 1468: fits a 1500-byte MTU)
	MaxWindow    int           // largest windowsize granted (default 64)
	// Done is told about every finished transfer (for timelines and metrics).
	Done func(client netip.Addr, file string, bytes int64, err error)
	// Metrics, when set, counts transfers and bytes.
	Metrics *Metrics
	Log     *slog.Logger
}

// Server is a read-only TFTP server.
type Server struct {
	cfg   Config
	roots []*files.Dir
	sem   chan struct{}
	ready chan struct{}
	addr  net.Addr
	wg    sync.WaitGroup
}

// NewServer opens the roots.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Listen == "" {
		cfg.Listen = "0.0.0.0:69"
	}
	if cfg.MaxTransfers <= 0 {
		cfg.MaxTransfers = 256
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 5
	}
	if cfg.MaxBlockSize <= 0 {
		cfg.MaxBlockSize = 1468
	}
	if cfg.MaxWindow <= 0 {
		cfg.MaxWindow = 64
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Server{cfg: cfg, sem: make(chan struct{}, cfg.MaxTransfers), ready: make(chan struct{})}
	for _, dir := range cfg.Roots {
		r, err := files.Open(dir, cfg.LinkRoot != "" && filepath.Clean(dir) == filepath.Clean(cfg.LinkRoot))
		if err != nil {
			s.close()
			return nil, fmt.Errorf("tftp root: %w", err)
		}
		s.roots = append(s.roots, r)
	}
	if len(s.roots) == 0 {
		return nil, errors.New("tftp: no root directory")
	}
	return s, nil
}

func (s *Server) close() {
	for _, r := range s.roots {
		r.Close()
	}
}

// Ready is closed once the server listens.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the listening address, once Ready.
func (s *Server) Addr() net.Addr { return s.addr }

// Run serves until ctx ends and in-flight transfers finish.
func (s *Server) Run(ctx context.Context) error {
	defer s.close()
	var lc net.ListenConfig
	conn, err := lc.ListenPacket(ctx, "udp4", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("tftp listen %s: %w", s.cfg.Listen, err)
	}
	pc := ipv4.NewPacketConn(conn)
	if err := pc.SetControlMessage(ipv4.FlagDst, true); err != nil {
		conn.Close()
		return fmt.Errorf("tftp listen: %w", err)
	}
	s.addr = conn.LocalAddr()
	close(s.ready)
	s.cfg.Log.Info("tftp listening", "addr", s.addr, "roots", s.cfg.Roots)
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	buf := make([]byte, 1500)
	for {
		n, cm, src, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				break
			}
			continue
		}
		client, ok := src.(*net.UDPAddr)
		if !ok {
			continue
		}
		var local net.IP
		if cm != nil && cm.Dst != nil && !cm.Dst.Equal(net.IPv4bcast) {
			local = cm.Dst
		}
		req, perr := ParseRequest(buf[:n])
		if perr != nil {
			reply(local, client, errorPacket(errIllegalOp, perr.Error()))
			continue
		}
		if req.Write {
			reply(local, client, errorPacket(errAccess, "this server is read-only"))
			continue
		}
		select {
		case s.sem <- struct{}{}:
		default:
			reply(local, client, errorPacket(errNotDefined, "server busy, try again"))
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.sem }()
			s.transfer(ctx, local, client, req)
		}()
	}
	s.wg.Wait()
	return nil
}

func reply(local net.IP, to *net.UDPAddr, b []byte) {
	c, err := net.DialUDP("udp4", &net.UDPAddr{IP: local}, to)
	if err != nil {
		return
	}
	c.Write(b)
	c.Close()
}

// clean turns a requested name into a path inside the roots, or "" when it
// tries to leave them. PXE ROMs sometimes send backslashes.
func clean(name string) string {
	name = strings.ReplaceAll(name, "\\", "/")
	if strings.ContainsRune(name, 0) {
		return ""
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return ""
		}
	}
	p := strings.TrimPrefix(path.Clean("/"+name), "/")
	if p == "" || p == "." {
		return ""
	}
	return p
}

func (s *Server) open(name string) (*os.File, int64, error) {
	p := clean(name)
	if p == "" {
		return nil, 0, fs.ErrPermission
	}
	var firstErr error
	for _, r := range s.roots {
		f, st, err := r.Open(p)
		if err != nil {
			if firstErr == nil || errors.Is(firstErr, fs.ErrNotExist) {
				firstErr = err
			}
			continue
		}
		return f, st.Size(), nil
	}
	return nil, 0, firstErr
}

type session struct {
	conn    *net.UDPConn
	blksize int
	window  int
	timeout time.Duration
	retries int
	// gso: the socket segments a write of several DATA packets into
	// datagrams of 4+blksize bytes (UDP_SEGMENT), so a window costs one
	// system call and one pass through the stack instead of one per block.
	gso bool
}

// Linux UDP generic segmentation offload (udp(7)); syscall does not name them.
const (
	solUDP         = 17  // SOL_UDP
	udpSegment     = 103 // UDP_SEGMENT
	maxGSOSegments = 64  // UDP_MAX_SEGMENTS
	maxGSOBytes    = 65507
)

// enableGSO asks the kernel to segment writes into DATA packets; it is
// refused by kernels older than 4.18, and a refusal just means a system call per block.
func (ss *session) enableGSO() {
	raw, err := ss.conn.SyscallConn()
	if err != nil {
		return
	}
	raw.Control(func(fd uintptr) {
		ss.gso = syscall.SetsockoptInt(int(fd), solUDP, udpSegment, 4+ss.blksize) == nil
	})
}

func (s *Server) transfer(ctx context.Context, local net.IP, client *net.UDPAddr, req *Request) {
	conn, err := net.DialUDP("udp4", &net.UDPAddr{IP: local}, client)
	if err != nil {
		s.cfg.Log.Warn("tftp reply socket", "client", client, "err", err)
		return
	}
	defer conn.Close()
	clientIP, _ := netip.AddrFromSlice(client.IP.To4())
	f, size, err := s.open(req.Filename)
	if err != nil {
		code, msg := uint16(errFileNotFound), "file not found"
		if errors.Is(err, fs.ErrPermission) || !errors.Is(err, fs.ErrNotExist) {
			code, msg = errAccess, "access violation"
		}
		conn.Write(errorPacket(code, msg))
		s.done(clientIP, req.Filename, 0, fmt.Errorf("%s: %w", msg, err))
		return
	}
	defer f.Close()
	ss := &session{conn: conn, blksize: 512, window: 1, timeout: s.cfg.Timeout, retries: s.cfg.Retries}
	accepted := s.negotiate(ss, req, size)
	if len(accepted) > 0 {
		values := map[string]string{}
		for _, n := range accepted {
			values[n] = req.Options[n]
		}
		if err := ss.exchange(ctx, oackPacket(accepted, values), 0); err != nil {
			var abort *clientError
			if _, probe := values["tsize"]; probe && errors.As(err, &abort) {
				// UEFI PXE asks for the size first and aborts after the OACK: not a failure.
				s.cfg.Log.Debug("tftp size probe", "client", clientIP, "file", req.Filename)
				return
			}
			s.done(clientIP, req.Filename, 0, fmt.Errorf("option acknowledgement: %w", err))
			return
		}
	}
	ss.enableGSO()
	n, err := ss.send(ctx, f, size)
	s.done(clientIP, req.Filename, n, err)
}

func (s *Server) done(client netip.Addr, file string, n int64, err error) {
	s.cfg.Metrics.record(n, err)
	if err != nil {
		s.cfg.Log.Info("tftp transfer failed", "client", client, "file", file, "err", err)
	} else {
		s.cfg.Log.Debug("tftp transfer", "client", client, "file", file, "bytes", n)
	}
	if s.cfg.Done != nil {
		s.cfg.Done(client, file, n, err)
	}
}

// negotiate applies the options the server supports and rewrites their values
// to what was granted; it returns the names to acknowledge, in request order.
func (s *Server) negotiate(ss *session, req *Request, size int64) []string {
	var accepted []string
	for _, name := range req.Order {
		v, err := strconv.Atoi(req.Options[name])
		if err != nil {
			continue
		}
		switch name {
		case "blksize":
			if v < 8 {
				continue
			}
			ss.blksize = min(v, 65464, s.cfg.MaxBlockSize)
			req.Options[name] = strconv.Itoa(ss.blksize)
		case "windowsize":
			if v < 1 {
				continue
			}
			ss.window = min(v, 65535, s.cfg.MaxWindow)
			req.Options[name] = strconv.Itoa(ss.window)
		case "timeout":
			if v < 1 || v > 255 {
				continue
			}
			ss.timeout = time.Duration(v) * time.Second
		case "tsize":
			req.Options[name] = strconv.FormatInt(size, 10)
		default:
			continue
		}
		accepted = append(accepted, name)
	}
	return accepted
}

var errTimeout = errors.New("client stopped answering")

// clientError is an ERROR packet from the client: it ended the transfer.
type clientError struct {
	code uint16
	msg  string
}

func (e *clientError) Error() string { return fmt.Sprintf("client error %d: %s", e.code, e.msg) }

// exchange sends pkt until the client acknowledges block want.
func (ss *session) exchange(ctx context.Context, pkt []byte, want uint16) error {
	buf := make([]byte, 516)
	for try := 0; try <= ss.retries; try++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if _, err := ss.conn.Write(pkt); err != nil {
			return err
		}
		deadline := time.Now().Add(ss.timeout)
		for {
			ss.conn.SetReadDeadline(deadline)
			n, err := ss.conn.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				return err
			}
			op, num, perr := parseReply(buf[:n])
			if perr != nil {
				return perr
			}
			if op == opACK && num == want {
				return nil
			}
		}
	}
	return errTimeout
}

// write sends packets laid out back to back, each seg bytes but the last:
// with GSO as few writes as the kernel's limits allow, else one per packet.
func (ss *session) write(pkts []byte, seg int) error {
	if ss.gso {
		per := min(maxGSOSegments, maxGSOBytes/seg) * seg
		rest := pkts
		for len(rest) > 0 {
			k := min(per, len(rest))
			if _, err := ss.conn.Write(rest[:k]); err != nil {
				// A path the kernel cannot segment for (an MTU smaller than a
				// block, a device without checksum offload): one write per block from here.
				ss.gso = false
				break
			}
			rest = rest[k:]
		}
		if len(rest) == 0 {
			return nil
		}
		pkts = rest
	}
	for len(pkts) > 0 {
		k := min(seg, len(pkts))
		if _, err := ss.conn.Write(pkts[:k]); err != nil {
			return err
		}
		pkts = pkts[k:]
	}
	return nil
}

func parseReply(b []byte) (op, num uint16, err error) {
	if len(b) < 4 {
		return 0, 0, nil
	}
	op = binary.BigEndian.Uint16(b)
	num = binary.BigEndian.Uint16(b[2:])
	if op == opERROR {
		return op, num, &clientError{code: num, msg: strings.TrimRight(string(b[4:]), "\x00")}
	}
	return op, num, nil
}

// send streams the file in windows of blocks (RFC 7440, written here: no Go
// TFTP library sends windows): the whole window goes out, then the client's
// ACK of the last block it received in order moves the window; a timeout
// resends from the first unacknowledged block.
func (ss *session) send(ctx context.Context, f io.ReaderAt, size int64) (int64, error) {
	last := size/int64(ss.blksize) + 1 // the final block is short, possibly empty
	seg := 4 + ss.blksize
	data := make([]byte, ss.window*ss.blksize) // one read per window
	out := make([]byte, ss.window*seg)         // the window's DATA packets, back to back
	ack := make([]byte, 516)
	next := int64(1) // first block not yet acknowledged
	retries := 0
	for next <= last {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		end := min(next+int64(ss.window)-1, last)
		n, err := f.ReadAt(data[:(end-next+1)*int64(ss.blksize)], (next-1)*int64(ss.blksize))
		if err != nil && !errors.Is(err, io.EOF) {
			ss.conn.Write(errorPacket(errNotDefined, "read error"))
			return 0, err
		}
		pkts := out[:0]
		for blk := next; blk <= end; blk++ {
			from := int(blk-next) * ss.blksize
			chunk := data[min(from, n):min(from+ss.blksize, n)]
			pkts = binary.BigEndian.AppendUint16(pkts, opDATA)
			pkts = binary.BigEndian.AppendUint16(pkts, uint16(blk))
			pkts = append(pkts, chunk...)
			if len(chunk) < ss.blksize {
				// A short block ends the transfer. Before the last one, the
				// file shrank while being sent: nothing may follow it, and a
				// segmented write must not put the next header inside it.
				end, last = blk, blk
			}
		}
		if err := ss.write(pkts, seg); err != nil {
			return 0, err
		}
		deadline := time.Now().Add(ss.timeout)
		advanced := false
		for !advanced {
			ss.conn.SetReadDeadline(deadline)
			n, err := ss.conn.Read(ack)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				return 0, err
			}
			op, num, perr := parseReply(ack[:n])
			if perr != nil {
				return 0, perr
			}
			if op != opACK {
				continue
			}
			// Block numbers wrap at 65536: map the ACK into the window just sent.
			for blk := next - 1; blk <= end; blk++ {
				if uint16(blk) == num {
					if blk >= next {
						next, advanced, retries = blk+1, true, 0
					}
					break
				}
			}
		}
		if !advanced {
			retries++
			if retries > ss.retries {
				return 0, errTimeout
			}
		}
	}
	return size, nil
}
