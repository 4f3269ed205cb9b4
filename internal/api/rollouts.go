package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/drover/drover/internal/rollout"
	"github.com/drover/drover/internal/store"
)

// Rollouts is what the API needs from the rollout runner, the one writer of rollouts.
type Rollouts interface {
	Plan(q rollout.Request) (rollout.Schedule, error)
	Start(ctx context.Context, q rollout.Request, actor string, audit store.AuditEntry) (*store.Rollout, rollout.Schedule, error)
	Pause(ctx context.Context, id int64, actor, reason string, audit store.AuditEntry) (*store.Rollout, error)
	Resume(ctx context.Context, id int64, actor string, audit store.AuditEntry) (*store.Rollout, error)
	Abort(ctx context.Context, id int64, actor, reason string, audit store.AuditEntry) (*store.Rollout, error)
}

// GitOps is what the API needs from the design repository follower.
type GitOps interface {
	Approve(ctx context.Context, commit, approver, requestID string) (*store.PendingCommit, error)
}

// ErrNotPending is wrapped by GitOps.Approve for a commit that is not waiting.
var ErrNotPending = errors.New("not waiting for approval")

func (s *Server) runner(w http.ResponseWriter) bool {
	if s.cfg.Rollouts == nil {
		writeError(w, http.StatusServiceUnavailable, "no_rollouts", "this server runs no rollouts")
		return false
	}
	return true
}

// ErrElsewhere is wrapped by a Rollouts error when rollouts run on another
// server (servers dividing a database's pods: the leader runs them).
var ErrElsewhere = errors.New("not on this server")

func rolloutError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrElsewhere):
		writeError(w, http.StatusServiceUnavailable, "elsewhere", err.Error())
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, rollout.ErrState):
		writeError(w, http.StatusConflict, "conflict", err.Error())
	case errors.Is(err, rollout.ErrNothing), errors.Is(err, rollout.ErrEmptyRequest):
		writeError(w, http.StatusUnprocessableEntity, "nothing_to_do", err.Error())
	default:
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
	}
}

// rolloutRequest reads a rollout request; false when it has answered with an error.
func (s *Server) rolloutRequest(w http.ResponseWriter, r *http.Request) (rollout.Request, bool) {
	var q rollout.Request
	if err := decodeBody(r, &q); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return q, false
	}
	return q, s.runner(w)
}

func (s *Server) rolloutPlan(w http.ResponseWriter, r *http.Request, _ *call) {
	q, ok := s.rolloutRequest(w, r)
	if !ok {
		return
	}
	sched, err := s.cfg.Rollouts.Plan(q)
	if err != nil {
		rolloutError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, sched)
}

func (s *Server) rolloutStart(w http.ResponseWriter, r *http.Request, c *call) {
	q, ok := s.rolloutRequest(w, r)
	if !ok {
		return
	}
	ro, sched, err := s.cfg.Rollouts.Start(r.Context(), q, c.actor(), store.AuditEntry{RequestID: c.requestID})
	if err != nil {
		rolloutError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"rollout": ro, "schedule": sched})
}

func (s *Server) rolloutList(w http.ResponseWriter, r *http.Request, _ *call) {
	ros, err := s.cfg.Store.Rollouts(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	writePage(w, r, ros)
}

func (s *Server) rolloutView(r *http.Request) (rollout.View, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return rollout.View{}, fmt.Errorf("%w: rollout id %q is not a number", store.ErrNotFound, r.PathValue("id"))
	}
	ro, ms, err := s.cfg.Store.Rollout(r.Context(), id)
	if err != nil {
		return rollout.View{}, err
	}
	return rollout.ViewOf(*ro, ms), nil
}

// rolloutGet answers a rollout, or with ?follow=true (or Accept:
// text/event-stream) streams it as server-sent events, one `rollout` event
// each time it changes, until it ends.
func (s *Server) rolloutGet(w http.ResponseWriter, r *http.Request, _ *call) {
	v, err := s.rolloutView(r)
	if err != nil {
		rolloutError(w, err)
		return
	}
	if !wantsStream(r) {
		writeJSON(w, http.StatusOK, v)
		return
	}
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	poll := time.NewTicker(500 * time.Millisecond)
	defer poll.Stop()
	var last []byte
	lastBeat := time.Now()
	for seq := 1; ; {
		b, _ := json.Marshal(v)
		if string(b) != string(last) {
			fmt.Fprintf(w, "id: %d\nevent: rollout\ndata: %s\n\n", seq, b)
			seq++
			last = b
		} else if time.Since(lastBeat) > 15*time.Second {
			io.WriteString(w, ": keep-alive\n\n")
			lastBeat = time.Now()
		}
		if flusher != nil {
			flusher.Flush()
		}
		if v.State == store.RolloutDone || v.State == store.RolloutAborted {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-poll.C:
		}
		if v, err = s.rolloutView(r); err != nil {
			return
		}
	}
}

type rolloutActionBody struct {
	Reason string `json:"reason"`
}

func (s *Server) rolloutAct(action string) func(w http.ResponseWriter, r *http.Request, c *call) {
	return func(w http.ResponseWriter, r *http.Request, c *call) {
		var body rolloutActionBody
		if err := decodeBody(r, &body); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		if !s.runner(w) {
			return
		}
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			writeError(w, http.StatusNotFound, "not_found", "rollout id is not a number")
			return
		}
		audit := store.AuditEntry{RequestID: c.requestID, Detail: body.Reason}
		var ro *store.Rollout
		switch action {
		case "pause":
			ro, err = s.cfg.Rollouts.Pause(r.Context(), id, c.actor(), body.Reason, audit)
		case "resume":
			ro, err = s.cfg.Rollouts.Resume(r.Context(), id, c.actor(), audit)
		case "abort":
			ro, err = s.cfg.Rollouts.Abort(r.Context(), id, c.actor(), body.Reason, audit)
		}
		if err != nil {
			rolloutError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, ro)
	}
}

func (s *Server) pending(w http.ResponseWriter, r *http.Request, _ *call) {
	cs, err := s.cfg.Store.Commits(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	writePage(w, r, cs)
}

func (s *Server) approve(w http.ResponseWriter, r *http.Request, c *call) {
	if s.cfg.GitOps == nil {
		writeError(w, http.StatusConflict, "not_following", "this server follows no design repository (start it with --follow REPO)")
		return
	}
	pc, err := s.cfg.GitOps.Approve(r.Context(), r.PathValue("commit"), c.actor(), c.requestID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, ErrNotPending):
		writeError(w, http.StatusConflict, "not_pending", err.Error())
	case err != nil:
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
	default:
		writeJSON(w, http.StatusOK, pc)
	}
}

// wantsStream: a listing asked for as server-sent events.
func wantsStream(r *http.Request) bool {
	return r.URL.Query().Get("follow") == "true" || strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}
