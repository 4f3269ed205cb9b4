package ui

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/drover/drover/internal/rollout"
	"github.com/drover/drover/internal/store"
)

// Rollouts is the rollout runner's operator actions.
type Rollouts interface {
	Pause(ctx context.Context, id int64, actor, reason string, audit store.AuditEntry) (*store.Rollout, error)
	Resume(ctx context.Context, id int64, actor string, audit store.AuditEntry) (*store.Rollout, error)
	Abort(ctx context.Context, id int64, actor, reason string, audit store.AuditEntry) (*store.Rollout, error)
}

const roleAdmin = "admin"

func (u *UI) rollouts(w http.ResponseWriter, r *http.Request, _ *session, v *view) {
	ros, err := u.cfg.Store.Rollouts(r.Context())
	if err != nil {
		u.fail(w, r, v, http.StatusInternalServerError, err.Error())
		return
	}
	v.Title, v.Page = "Rollouts", ros
	u.render(w, r, "rollouts", v)
}

type rolloutPage struct {
	rollout.View
	CanAbort bool
}

// rollout shows one rollout's progress per wave and zone and its machines;
// the page reloads itself every 2 s until the rollout ends.
func (u *UI) rollout(w http.ResponseWriter, r *http.Request, s *session, v *view) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		u.fail(w, r, v, http.StatusNotFound, "no such rollout")
		return
	}
	ro, ms, err := u.cfg.Store.Rollout(r.Context(), id)
	if err != nil {
		u.fail(w, r, v, http.StatusNotFound, err.Error())
		return
	}
	v.Title = fmt.Sprintf("Rollout %d", id)
	v.Page = rolloutPage{View: rollout.ViewOf(*ro, ms), CanAbort: u.cfg.RoleRank(s.role) >= u.cfg.RoleRank(roleAdmin)}
	v.Refresh = ro.State != store.RolloutDone && ro.State != store.RolloutAborted
	u.render(w, r, "rollout", v)
}

// rolloutAct pauses or resumes (operator) or aborts (admin) a rollout.
func (u *UI) rolloutAct(w http.ResponseWriter, r *http.Request, s *session, v *view) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || u.cfg.Rollouts == nil {
		u.fail(w, r, v, http.StatusNotFound, "no such rollout")
		return
	}
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	audit := store.AuditEntry{Detail: strings.TrimSpace("from the web UI " + reason)}
	switch r.PathValue("action") {
	case "pause":
		_, err = u.cfg.Rollouts.Pause(r.Context(), id, s.name, reason, audit)
	case "resume":
		_, err = u.cfg.Rollouts.Resume(r.Context(), id, s.name, audit)
	case "abort":
		if u.cfg.RoleRank(s.role) < u.cfg.RoleRank(roleAdmin) {
			u.deny(w, r, s, "forbidden", fmt.Sprintf("your token %q has role %s; aborting a rollout needs admin", s.name, s.role))
			return
		}
		_, err = u.cfg.Rollouts.Abort(r.Context(), id, s.name, reason, audit)
	default:
		u.fail(w, r, v, http.StatusNotFound, "no such action")
		return
	}
	back := fmt.Sprintf("/rollouts/%d", id)
	if err != nil {
		http.Redirect(w, r, back+"?error="+url.QueryEscape(err.Error()), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, back+"?done="+url.QueryEscape(r.PathValue("action")+" done"), http.StatusSeeOther)
}
