// Package ui is drover's web UI: server-rendered pages (zones, a pod's rack
// elevation, a machine with its live timeline, designs and pending commits,
// the audit log, search) over the same store, fleet and roles as the API.
// Logging in takes an API token and keeps a session in an HttpOnly,
// SameSite=Strict cookie; every form carries a CSRF token.
package ui

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/drover/drover/internal/fleet"
	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/secret"
	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/zone"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Fleet is what the UI needs from the running inventory.
type Fleet interface {
	Index() *zone.Index
	InSlot(key string) (machine.Machine, bool)
	Operate(ctx context.Context, op fleet.Op) (machine.Machine, error)
	PowerAction(ctx context.Context, op fleet.PowerOp) (fleet.PowerResult, error)
}

// Config configures the UI.
type Config struct {
	Store store.Store
	Fleet Fleet
	// Rollouts is the rollout runner; nil: rollout pages have no actions.
	Rollouts Rollouts
	// RoleRank orders roles (viewer < operator < admin), as the API does.
	RoleRank func(role string) int
	// Secure marks the session cookie Secure (the listener serves TLS).
	Secure     bool
	SessionTTL time.Duration // default 8h
	Log        *slog.Logger
	Now        func() time.Time
}

// UI serves the web UI.
type UI struct {
	cfg      Config
	pages    map[string]*template.Template
	mux      *http.ServeMux
	mu       sync.Mutex
	sessions map[string]*session
}

type session struct {
	tokenHash string
	name      string
	role      string
	csrf      string
	expires   time.Time
}

const cookieName = "drover_session"

// New builds the UI.
func New(cfg Config) (*UI, error) {
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 8 * time.Hour
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	u := &UI{cfg: cfg, pages: map[string]*template.Template{}, sessions: map[string]*session{}}
	funcs := template.FuncMap{
		"ts":    func(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") },
		"since": func(t time.Time) string { return cfg.Now().Sub(t).Round(time.Second).String() },
		"lower": strings.ToLower,
		"join":  strings.Join,
		"pct": func(done, total int) int {
			if total == 0 {
				return 0
			}
			return 100 * done / total
		},
	}
	for _, page := range []string{"login", "zones", "pod", "machine", "design", "audit", "search", "error", "rollouts", "rollout"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+page+".html")
		if err != nil {
			return nil, fmt.Errorf("ui template %s: %w", page, err)
		}
		u.pages[page] = t
	}
	static, _ := fs.Sub(staticFS, "static")
	m := http.NewServeMux()
	m.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /login", u.loginPage)
	m.HandleFunc("POST /login", u.login)
	m.HandleFunc("POST /logout", u.with(roleViewer, u.logout))
	m.HandleFunc("GET /{$}", u.with(roleViewer, u.zones))
	m.HandleFunc("GET /zones/{zone}/pods/{pod}", u.with(roleViewer, u.pod))
	m.HandleFunc("GET /zones/{zone}/pods/{pod}/events", u.with(roleViewer, u.podEvents))
	m.HandleFunc("GET /machines/{ref}", u.with(roleViewer, u.machine))
	m.HandleFunc("GET /machines/{ref}/events", u.with(roleViewer, u.machineEvents))
	m.HandleFunc("POST /machines/{ref}/{action}", u.with(roleOperator, u.act))
	m.HandleFunc("GET /design", u.with(roleViewer, u.design))
	m.HandleFunc("GET /rollouts", u.with(roleViewer, u.rollouts))
	m.HandleFunc("GET /rollouts/{id}", u.with(roleViewer, u.rollout))
	m.HandleFunc("POST /rollouts/{id}/{action}", u.with(roleOperator, u.rolloutAct))
	m.HandleFunc("GET /audit", u.with(roleViewer, u.audit))
	m.HandleFunc("GET /search", u.with(roleViewer, u.search))
	u.mux = m
	return u, nil
}

// ServeHTTP serves the UI's pages.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'")
	w.Header().Set("Referrer-Policy", "same-origin")
	u.mux.ServeHTTP(w, r)
}

const (
	roleViewer   = "viewer"
	roleOperator = "operator"
)

// view is what every page template gets.
type view struct {
	Title   string
	User    string
	Role    string
	CSRF    string
	CanAct  bool // operator or more: action buttons are shown
	Flash   string
	Error   string
	Query   string
	Page    any
	Refresh bool
}

type handler func(w http.ResponseWriter, r *http.Request, s *session, v *view)

// with checks the session (and that its token is still valid), the role,
// and on POST the CSRF token, before calling h.
func (u *UI) with(role string, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := u.session(r)
		if s == nil {
			if r.Method == http.MethodGet && !strings.HasSuffix(r.URL.Path, "/events") {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			http.Error(w, "log in first", http.StatusUnauthorized)
			return
		}
		v := &view{User: s.name, Role: s.role, CSRF: s.csrf, CanAct: u.cfg.RoleRank(s.role) >= u.cfg.RoleRank(roleOperator),
			Flash: r.URL.Query().Get("done"), Error: r.URL.Query().Get("error")}
		if r.Method == http.MethodPost {
			if got := r.PostFormValue("csrf"); got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) != 1 {
				u.deny(w, r, s, "csrf", "the form's CSRF token is missing or wrong: reload the page and try again")
				return
			}
		}
		if u.cfg.RoleRank(s.role) < u.cfg.RoleRank(role) {
			u.deny(w, r, s, "forbidden", fmt.Sprintf("your token %q has role %s; this needs %s", s.name, s.role, role))
			return
		}
		h(w, r, s, v)
	}
}

// deny refuses with 403 and writes the refusal to the audit log.
func (u *UI) deny(w http.ResponseWriter, r *http.Request, s *session, code, msg string) {
	e := &store.AuditEntry{At: u.cfg.Now(), Actor: s.name, Action: "ui " + r.Method + " " + r.URL.Path, Target: r.URL.Path, Outcome: "denied: " + code}
	if err := u.cfg.Store.AddAudit(r.Context(), e); err != nil {
		u.cfg.Log.Error("refused UI request not audited", "actor", s.name, "err", err)
	}
	w.WriteHeader(http.StatusForbidden)
	u.render(w, r, "error", &view{User: s.name, Role: s.role, CSRF: s.csrf, Title: "Refused", Error: msg})
}

// session returns the request's live session: known, not expired, and its
// token neither revoked nor expired since the login.
func (u *UI) session(r *http.Request) *session {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return nil
	}
	u.mu.Lock()
	s := u.sessions[c.Value]
	now := u.cfg.Now()
	if s != nil && now.After(s.expires) {
		delete(u.sessions, c.Value)
		s = nil
	}
	u.mu.Unlock()
	if s == nil {
		return nil
	}
	t, err := u.cfg.Store.TokenByHash(r.Context(), s.tokenHash)
	if err != nil || t.Revoked || !t.Expires.IsZero() && now.After(t.Expires) {
		u.mu.Lock()
		delete(u.sessions, c.Value)
		u.mu.Unlock()
		return nil
	}
	return s
}

func (u *UI) loginPage(w http.ResponseWriter, r *http.Request) {
	u.render(w, r, "login", &view{Title: "Log in", Error: r.URL.Query().Get("error"), Query: r.URL.Query().Get("next")})
}

// login exchanges an API token for a session. The token itself is never
// stored in the cookie: only a random session id is.
func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	tok := strings.TrimSpace(r.PostFormValue("token"))
	next := r.PostFormValue("next")
	// Only a path on this site: "//host" and "/\host" would leave it.
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		next = "/"
	}
	now := u.cfg.Now()
	fail := func(actor, why string) {
		u.cfg.Store.AddAudit(r.Context(), &store.AuditEntry{At: now, Actor: actor, Action: "ui-login", Outcome: "denied: " + why})
		w.WriteHeader(http.StatusUnauthorized)
		u.render(w, r, "login", &view{Title: "Log in", Error: "That token cannot log in: " + why + ".", Query: next})
	}
	if tok == "" {
		fail("anonymous", "no token given")
		return
	}
	hash := secret.Hash(tok)
	t, err := u.cfg.Store.TokenByHash(r.Context(), hash)
	switch {
	case errors.Is(err, store.ErrNotFound):
		fail("anonymous", "it is not valid")
		return
	case err != nil:
		http.Error(w, "could not check the token", http.StatusInternalServerError)
		return
	case t.Revoked:
		fail(t.Name, "it was revoked")
		return
	case !t.Expires.IsZero() && now.After(t.Expires):
		fail(t.Name, "it expired")
		return
	}
	id := secret.Hex(32)
	s := &session{tokenHash: hash, name: t.Name, role: t.Role, csrf: secret.Hex(32), expires: now.Add(u.cfg.SessionTTL)}
	if !t.Expires.IsZero() && t.Expires.Before(s.expires) {
		s.expires = t.Expires
	}
	u.mu.Lock()
	for k, old := range u.sessions { // forget expired sessions as new ones come
		if now.After(old.expires) {
			delete(u.sessions, k)
		}
	}
	u.sessions[id] = s
	u.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: id, Path: "/", HttpOnly: true, Secure: u.cfg.Secure,
		SameSite: http.SameSiteStrictMode, Expires: s.expires})
	u.cfg.Store.AddAudit(r.Context(), &store.AuditEntry{At: now, Actor: t.Name, Action: "ui-login", Outcome: "ok"})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (u *UI) logout(w http.ResponseWriter, r *http.Request, s *session, _ *view) {
	if c, err := r.Cookie(cookieName); err == nil {
		u.mu.Lock()
		delete(u.sessions, c.Value)
		u.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", HttpOnly: true, Secure: u.cfg.Secure, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	u.cfg.Store.AddAudit(r.Context(), &store.AuditEntry{At: u.cfg.Now(), Actor: s.name, Action: "ui-logout", Outcome: "ok"})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (u *UI) render(w http.ResponseWriter, r *http.Request, page string, v *view) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := u.pages[page].Execute(w, v); err != nil {
		u.cfg.Log.Error("ui render", "page", page, "path", r.URL.Path, "err", err)
	}
}

func (u *UI) fail(w http.ResponseWriter, r *http.Request, v *view, status int, msg string) {
	w.WriteHeader(status)
	v.Title, v.Error = "Error", msg
	u.render(w, r, "error", v)
}
