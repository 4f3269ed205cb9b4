package boot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"github.com/drover/drover/internal/counter"
	"github.com/drover/drover/internal/files"
	"github.com/drover/drover/internal/fleet"
	"github.com/drover/drover/internal/httpserve"
	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/zone"
)

// Fleet is what the boot service needs from the inventory.
type Fleet interface {
	Script(ctx context.Context, ticket string, src netip.Addr) (fleet.Target, error)
	Holder(ticket string, src netip.Addr) (fleet.Target, error)
	Installing(token string) (fleet.Target, error)
	IssueBootToken(ctx context.Context, installToken string) (string, error)
	PhoneHome(ctx context.Context, token, status, message string, facts map[string]any) (machine.Machine, error)
	Note(addr netip.Addr, kind machine.Kind, reason string)
	NoteMachine(id int64, kind machine.Kind, reason string)
}

// Discovery is the inventory image unknown machines boot, if any.
type Discovery struct {
	Kernel string
	Initrd string
	Args   string
}

// Config configures the boot service.
type Config struct {
	Listen       string // TCP address (default 0.0.0.0:8080)
	Fleet        Fleet
	ArtifactRoot string // kernels, initrds, images: served under /artifacts/
	IPXERoot     string // iPXE binaries (default /usr/lib/ipxe): served under /ipxe/
	Discovery    Discovery
	Catalogue    Catalogue    // images of profiles; files under ArtifactRoot/sha256/
	Stats        *counter.Set // requests by kind and status: "script|200"
	// Fill, when set, puts an artifact that ArtifactRoot lacks there (a pod
	// agent fetches it from its controller); rel is a clean local path.
	Fill func(ctx context.Context, rel string) error
	Log  *slog.Logger
}

// Server is the machine-facing HTTP service.
type Server struct {
	cfg       Config
	artifacts *files.Dir
	ipxe      *files.Dir
	ready     chan struct{}
	addr      net.Addr
	templates *templates
}

// NewServer opens the artifact roots.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Listen == "" {
		cfg.Listen = "0.0.0.0:8080"
	}
	if cfg.IPXERoot == "" {
		cfg.IPXERoot = "/usr/lib/ipxe"
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Server{cfg: cfg, ready: make(chan struct{}), templates: &templates{}}
	var err error
	if cfg.ArtifactRoot != "" {
		if s.artifacts, err = files.Open(cfg.ArtifactRoot, false); err != nil {
			return nil, fmt.Errorf("boot artifacts: %w", err)
		}
	}
	if s.ipxe, err = files.Open(cfg.IPXERoot, true); err != nil {
		cfg.Log.Warn("no iPXE binaries for HTTP boot", "dir", cfg.IPXERoot, "err", err)
	}
	return s, nil
}

// Ready is closed once the server listens.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the listening address, once Ready.
func (s *Server) Addr() net.Addr { return s.addr }

// Handler routes machine requests.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /boot/{ticket}", s.script)
	mux.HandleFunc("GET /artifacts/{path...}", func(w http.ResponseWriter, r *http.Request) { s.file(w, r, s.artifacts, machine.KindArtifact) })
	mux.HandleFunc("GET /ipxe/{path...}", func(w http.ResponseWriter, r *http.Request) { s.file(w, r, s.ipxe, machine.KindIPXE) })
	mux.HandleFunc("GET /install/{template}", s.template)
	mux.HandleFunc("GET /ztp/{ticket}/{name}", s.ztpTicket)
	mux.HandleFunc("GET /ztp/files/{name}", s.ztpFile)
	mux.HandleFunc("GET /agent/plan", s.plan)
	mux.HandleFunc("POST /phone-home", s.phoneHome)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		mux.ServeHTTP(rec, r)
		s.cfg.Stats.Add(requestKind(r.URL.Path) + "|" + strconv.Itoa(rec.code))
	})
}

// requestKind names a machine request for metrics.
func requestKind(path string) string {
	for _, k := range []struct{ prefix, kind string }{{"/boot/", "script"}, {"/artifacts/", "artifact"}, {"/ipxe/", "ipxe"}, {"/install/", "template"}, {"/ztp/", "ztp"}, {"/agent/", "plan"}, {"/phone-home", "phone-home"}, {"/healthz", "health"}} {
		if strings.HasPrefix(path, k.prefix) {
			return k.kind
		}
	}
	return "other"
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// ReadFrom keeps sendfile for artifacts when the writer supports it.
func (r *statusRecorder) ReadFrom(src io.Reader) (int64, error) {
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(r.ResponseWriter, src)
}

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	defer func() {
		if s.artifacts != nil {
			s.artifacts.Close()
		}
		if s.ipxe != nil {
			s.ipxe.Close()
		}
	}()
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("boot http listen %s: %w", s.cfg.Listen, err)
	}
	s.addr = ln.Addr()
	close(s.ready)
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(s.cfg.Log.Handler(), slog.LevelWarn)}
	s.cfg.Log.Info("boot http listening", "addr", s.addr)
	return httpserve.Serve(ctx, srv, ln, "", "")
}

func source(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func baseURL(r *http.Request) string { return "http://" + r.Host }

func (s *Server) script(w http.ResponseWriter, r *http.Request) {
	ticket, ok := strings.CutSuffix(r.PathValue("ticket"), ".ipxe")
	if !ok {
		http.NotFound(w, r)
		return
	}
	t, err := s.cfg.Fleet.Script(r.Context(), ticket, source(r))
	if err != nil {
		if errors.Is(err, fleet.ErrUnknown) {
			s.cfg.Log.Info("script refused", "src", source(r), "err", err)
			http.Error(w, "boot ticket is not valid for this client: restart from DHCP", http.StatusForbidden)
			return
		}
		s.cfg.Log.Error("script", "err", err)
		http.Error(w, "server error", http.StatusInternalServerError)
		return
	}
	body, err := s.render(t, baseURL(r))
	if err != nil {
		s.cfg.Log.Error("script", "machine", t.Machine.Label(), "err", err)
		s.cfg.Fleet.NoteMachine(t.Machine.ID, machine.KindTemplateError, err.Error())
		http.Error(w, "#!ipxe\necho drover: "+err.Error()+"\n", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	io.WriteString(w, body)
}

// render writes the iPXE script for a target.
func (s *Server) render(t fleet.Target, base string) (string, error) {
	var b strings.Builder
	b.WriteString("#!ipxe\n")
	switch t.Action {
	case fleet.ActionInstall:
		p := t.Zone.Profile(t.Slot.Profile)
		if p == nil {
			return "", fmt.Errorf("profile %q of %s is not in the design", t.Slot.Profile, t.Slot.Name)
		}
		f := factsFor(t, base)
		args, err := s.templates.renderText("kernel arguments of profile "+p.Name, p.Args, f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "echo drover: installing %s (%s) in %s/%s\n", t.Slot.Name, roleName(t.Slot), t.Slot.Zone, t.Slot.Pod)
		kernel := fmt.Sprintf("kernel %s/artifacts/%s?step=kernel", base, p.Kernel)
		// UEFI iPXE hands the kernel its initrds only when named on the command line.
		for _, i := range p.Initrds {
			kernel += " initrd=" + path.Base(i)
		}
		kernel += " " + strings.TrimSpace(args)
		kernel += fmt.Sprintf(" drover.url=%s drover.token=%s drover.name=%s BOOTIF=01-${netX/mac:hexhyp}", base, t.Token, t.Slot.PermanentName)
		b.WriteString(strings.TrimSpace(kernel) + "\n")
		for _, i := range p.Initrds {
			fmt.Fprintf(&b, "initrd --name %s %s/artifacts/%s?step=initrd\n", path.Base(i), base, i)
		}
		b.WriteString("boot\n")
	case fleet.ActionDiscovery:
		d := s.cfg.Discovery
		if d.Kernel == "" {
			fmt.Fprintf(&b, "echo drover: %s is not in a slot of the design: not installing\nexit\n", t.Machine.MAC)
			break
		}
		fmt.Fprintf(&b, "echo drover: discovery for %s\n", t.Machine.MAC)
		fmt.Fprintf(&b, "kernel %s/artifacts/%s?step=kernel initrd=%s %s drover.url=%s drover.mode=discover\n", base, d.Kernel, path.Base(d.Initrd), d.Args, base)
		fmt.Fprintf(&b, "initrd --name %s %s/artifacts/%s?step=initrd\nboot\n", path.Base(d.Initrd), base, d.Initrd)
	case fleet.ActionLocal:
		fmt.Fprintf(&b, "echo drover: %s is %s: booting from local disk\nexit\n", t.Machine.Label(), t.Machine.State)
	default:
		fmt.Fprintf(&b, "echo drover: %s is retired: not booting\nexit 1\n", t.Machine.Label())
	}
	return b.String(), nil
}

func roleName(s *zone.Slot) string {
	if s.Variant != "" {
		return s.Role + "/" + s.Variant
	}
	return s.Role
}

// templates keeps templates parsed by their text: a boot storm renders the
// same few thousands of times, and parsing them was most of the cost of
// rendering. An edited template file is a new text, parsed anew.
type templates struct {
	mu     sync.Mutex
	parsed map[[2]string]*template.Template // what, text
	files  map[string]fileText              // by path
}

// fileText is a template file's text as read, with what identifies that
// version of the file: an edit, or a new file in its place, changes them.
type fileText struct {
	text              string
	size, ino         int64
	modified, changed time.Time
}

// readFile returns the text of the template file at path. A file whose
// identity (inode, size, modification and change times) is what it was
// when last read is not read again: a storm renders the same few files
// thousands of times, and opening and reading each was 4 % of the
// server's CPU. An edited file is read at its next use, as before.
func (c *templates) readFile(path string) (string, error) {
	if c == nil {
		b, err := os.ReadFile(path)
		return string(b), err
	}
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	id := identify(st)
	c.mu.Lock()
	cached, ok := c.files[path]
	c.mu.Unlock()
	if ok && cached.same(id) {
		return cached.text, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	// The identity taken before the read: a write during it changes the
	// file's identity again, so the next use reads it anew.
	id.text = string(b)
	c.mu.Lock()
	if c.files == nil || len(c.files) >= maxTemplates {
		c.files = map[string]fileText{}
	}
	c.files[path] = id
	c.mu.Unlock()
	return id.text, nil
}

func identify(st os.FileInfo) fileText {
	id := fileText{size: st.Size(), modified: st.ModTime()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		id.ino = int64(sys.Ino)
		id.changed = time.Unix(sys.Ctim.Unix())
	}
	return id
}

func (f fileText) same(o fileText) bool {
	return f.size == o.size && f.ino == o.ino && f.modified.Equal(o.modified) && f.changed.Equal(o.changed)
}

// maxTemplates bounds the cache: each edit of a template leaves its old
// text behind, and past this many the cache starts over.
const maxTemplates = 256

// renderText renders a template completely or not at all; what names it in
// errors. A nil cache parses every time.
func (c *templates) renderText(what, text string, f Facts) (string, error) {
	t, err := c.parse(what, text)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, f); err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	return b.String(), nil
}

// parse is the template parsed from text, from the cache when it is there.
func (c *templates) parse(what, text string) (*template.Template, error) {
	if c == nil {
		return template.New(what).Option("missingkey=error").Parse(text)
	}
	key := [2]string{what, text}
	c.mu.Lock()
	t := c.parsed[key]
	c.mu.Unlock()
	if t != nil {
		return t, nil
	}
	t, err := template.New(what).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.parsed == nil || len(c.parsed) >= maxTemplates {
		c.parsed = map[[2]string]*template.Template{}
	}
	c.parsed[key] = t
	c.mu.Unlock()
	return t, nil
}

func token(r *http.Request) string {
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return t
	}
	return r.URL.Query().Get("token")
}

const tokenRefused = "install token is not valid: wrong, already used, or the machine is not installing"

func (s *Server) template(w http.ResponseWriter, r *http.Request) {
	t, err := s.cfg.Fleet.Installing(token(r))
	if err != nil {
		http.Error(w, tokenRefused, http.StatusForbidden)
		return
	}
	name := r.PathValue("template")
	t.Token = token(r)
	p := t.Zone.Profile(t.Slot.Profile)
	var file string
	if p != nil {
		file, _ = p.TemplatePath(name)
	}
	if file == "" {
		http.Error(w, fmt.Sprintf("profile %q has no template %q", t.Slot.Profile, name), http.StatusNotFound)
		return
	}
	text, err := s.templates.readFile(file)
	if err == nil {
		var out string
		out, err = s.templates.renderText("template "+name, text, factsFor(t, baseURL(r)))
		if err == nil {
			s.cfg.Fleet.NoteMachine(t.Machine.ID, machine.KindTemplate, "rendered "+name)
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			io.WriteString(w, out)
			return
		}
	}
	s.cfg.Log.Error("install template", "machine", t.Slot.Name, "template", name, "err", err)
	s.cfg.Fleet.NoteMachine(t.Machine.ID, machine.KindTemplateError, err.Error())
	http.Error(w, "drover could not render this template: "+err.Error(), http.StatusInternalServerError)
}

type phoneHomeBody struct {
	Status  string         `json:"status"`
	Message string         `json:"message"`
	Facts   map[string]any `json:"facts"`
}

func (s *Server) phoneHome(w http.ResponseWriter, r *http.Request) {
	var body phoneHomeBody
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "application/json" {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, "body is not JSON: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	if body.Status == "" {
		body.Status = r.FormValue("status")
	}
	if body.Message == "" {
		body.Message = r.FormValue("message")
	}
	m, err := s.cfg.Fleet.PhoneHome(r.Context(), token(r), body.Status, body.Message, body.Facts)
	switch {
	case errors.Is(err, fleet.ErrUnknown):
		http.Error(w, tokenRefused, http.StatusForbidden)
		return
	case errors.Is(err, fleet.ErrBadStatus):
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	case err != nil:
		s.cfg.Log.Error("phone-home", "err", err)
		http.Error(w, "server error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"name": m.Name, "state": string(m.State)})
}

// file serves a file from root with Content-Length, Range and ETag, without
// reading it into memory.
func (s *Server) file(w http.ResponseWriter, r *http.Request, root *files.Dir, kind machine.Kind) {
	if root == nil {
		http.NotFound(w, r)
		return
	}
	s.serveFile(w, r, root, kind, path.Clean(r.PathValue("path")))
}

// serveFile serves the file at clean path p of root.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, root *files.Dir, kind machine.Kind, p string) {
	if root == nil {
		http.NotFound(w, r)
		return
	}
	f, st, err := root.Open(p)
	if err != nil && root == s.artifacts && s.cfg.Fill != nil && filepath.IsLocal(p) {
		if ferr := s.cfg.Fill(r.Context(), p); ferr == nil {
			f, st, err = root.Open(p)
		} else {
			s.cfg.Log.Warn("artifact not available", "path", p, "err", ferr)
		}
	}
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	w.Header().Set("ETag", `"`+strconv.FormatInt(st.Size(), 16)+"-"+strconv.FormatInt(st.ModTime().UnixNano(), 16)+`"`)
	if r.Method == http.MethodGet && (r.Header.Get("Range") == "" || strings.HasPrefix(r.Header.Get("Range"), "bytes=0-")) {
		step := kind
		switch q := machine.Kind(r.URL.Query().Get("step")); q {
		case machine.KindKernel, machine.KindInitrd:
			step = q
		}
		s.cfg.Fleet.Note(source(r), step, fmt.Sprintf("GET %s (%d bytes)", p, st.Size()))
	}
	http.ServeContent(w, r, st.Name(), st.ModTime(), f)
}
