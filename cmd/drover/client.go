package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/zone"
)

// Exit codes of commands that talk to the API, beyond exitOK/exitError1/exitChanges.
const (
	exitUnauthenticated = 3 // 401: no token, or a wrong, expired or revoked one
	exitForbidden       = 4 // 403: the token's role is not enough
	exitNotFound        = 5 // 404
	exitConflict        = 6 // 409: the machine's state does not allow it
)

// apiClient talks to a drover server's operator API.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

// remote reports whether commands should use the API rather than the database.
func (g *globals) remote() bool { return g.server != "" }

func (g *globals) client() (*apiClient, error) {
	if g.server == "" {
		return nil, &usageError{errors.New("this command talks to a drover server: give --server URL (or DROVER_SERVER) and a token (DROVER_TOKEN or --token-file)")}
	}
	token := g.env.getenv("DROVER_TOKEN")
	if g.tokenFile != "" {
		b, err := os.ReadFile(g.tokenFile)
		if err != nil {
			return nil, &usageError{fmt.Errorf("token file: %w", err)}
		}
		token = strings.TrimSpace(string(b))
	}
	base := strings.TrimRight(g.server, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &apiClient{base: base, token: token, http: &http.Client{Timeout: 60 * time.Second}}, nil
}

type apiErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Problems []string `json:"problems"`
}

func (c *apiClient) request(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("drover server %s: %w", c.base, err)
	}
	if resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	var e apiErrorBody
	json.NewDecoder(resp.Body).Decode(&e)
	msg := e.Error.Message
	if msg == "" {
		msg = resp.Status
	}
	if len(e.Problems) > 0 {
		msg += ":\n" + strings.Join(e.Problems, "\n")
	}
	code := exitError1
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		code = exitUnauthenticated
	case http.StatusForbidden:
		code = exitForbidden
	case http.StatusNotFound:
		code = exitNotFound
	case http.StatusConflict:
		code = exitConflict
	}
	return nil, &exitError{code: code, err: fmt.Errorf("%s (%s)", msg, e.Error.Code)}
}

// call sends a request and decodes the JSON answer into out.
func (c *apiClient) call(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// all fetches every page of a paginated listing.
func all[T any](ctx context.Context, c *apiClient, path string, q url.Values) ([]T, error) {
	var out []T
	for page := 1; ; page++ {
		q.Set("page", fmt.Sprint(page))
		q.Set("per_page", "1000")
		var pg struct {
			Items []T `json:"items"`
			Total int `json:"total"`
		}
		if err := c.call(ctx, "GET", path+"?"+q.Encode(), nil, &pg); err != nil {
			return nil, err
		}
		out = append(out, pg.Items...)
		if len(out) >= pg.Total || len(pg.Items) == 0 {
			return out, nil
		}
	}
}

// designUpload reads a design for the API: a directory's files, or a zone
// file and the templates beside it.
func designUpload(path string) (map[string]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	root, only := path, ""
	if !st.IsDir() {
		root, only = filepath.Dir(path), filepath.Base(path)
	}
	files := map[string]string{}
	total := 0
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		ext := filepath.Ext(p)
		isZone := (ext == ".yaml" || ext == ".yml") && filepath.Dir(rel) == "."
		if strings.HasPrefix(d.Name(), ".") || isZone && only != "" && rel != only {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if total += len(b); total > 16<<20 {
			return errors.New("the design directory holds more than 16 MiB: name a path on the server instead (--server-path)")
		}
		files[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	return files, err
}

func printMachines(w io.Writer, ms []*machine.Machine) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tMAC\tSTATE\tSLOT\tSINCE")
	for _, m := range ms {
		state := string(m.State)
		if m.NeedsReinstall {
			state += " (needs reinstall)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", dash(m.Name), m.MAC, state, dash(m.SlotKey), m.StateSince.Format(time.RFC3339))
	}
	return tw.Flush()
}

func printMachine(w io.Writer, m *machine.Machine, tl []machine.Entry) error {
	fmt.Fprintf(w, "name:     %s\nmac:      %s\nstate:    %s since %s\nslot:     %s\n", dash(m.Name), m.MAC, m.State, m.StateSince.Format(time.RFC3339), dash(m.SlotKey))
	if m.NeedsReinstall {
		fmt.Fprintln(w, "          needs reinstall: the design changed its role, variant or profile")
	}
	if m.Maintenance != nil {
		fmt.Fprintf(w, "maint.:   %s (owner %s, until %s)\n", m.Maintenance.Reason, m.Maintenance.Owner, m.Maintenance.Expires.Format(time.RFC3339))
	}
	if !m.Deadline.IsZero() {
		fmt.Fprintf(w, "deadline: %s\n", m.Deadline.Format(time.RFC3339))
	}
	fmt.Fprintln(w, "timeline:")
	tw := newTable(w)
	for _, e := range tl {
		printEntry(tw, e)
	}
	return tw.Flush()
}

func printEmptySlot(w io.Writer, s *zone.Slot) error {
	role := s.Role
	if s.Variant != "" {
		role += "/" + s.Variant
	}
	fmt.Fprintf(w, "name:     %s\nslot:     %s (zone %s, pod %s)\nrole:     %s\naddress:  %s\n", s.Name, s.Key, s.Zone, s.Pod, role, s.Address)
	if s.BMCAddress.IsValid() {
		fmt.Fprintf(w, "bmc:      %s\n", s.BMCAddress)
	}
	fmt.Fprintln(w, "machine:  none: the slot is empty (nothing has booted in it yet)")
	return nil
}

func printEntry(w io.Writer, e machine.Entry) {
	change := ""
	if e.From != "" || e.To != "" {
		change = fmt.Sprintf("%s -> %s", e.From, e.To)
	}
	fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\n", e.At.Format("2006-01-02 15:04:05.000"), e.Kind, dash(change), e.Actor, e.Reason)
}

// follow prints a machine's timeline stream (server-sent events) until ctx ends.
func (c *apiClient) follow(ctx context.Context, ref string, w io.Writer, asJSON bool) error {
	resp, err := c.request(ctx, "GET", machinePath(ref, "/timeline?follow=true"), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if asJSON {
			fmt.Fprintln(w, data)
			continue
		}
		var e machine.Entry
		if json.Unmarshal([]byte(data), &e) == nil {
			tw := newTable(w)
			printEntry(tw, e)
			tw.Flush()
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}

// machinePath is the API path of a machine, or of one of its sub-resources.
func machinePath(ref, suffix string) string {
	return "/api/v1/machines/" + url.PathEscape(ref) + suffix
}
