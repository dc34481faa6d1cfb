package console

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
)

// outcome is what an action did.
type outcome struct {
	Message  string          `json:"message"`
	Transfer ledger.Transfer `json:"transfer"`
}

// action does one thing to transfer id as op, with the request's form.
type action func(r *http.Request, op Operator, id string) (outcome, error)

func (c *Console) actions() {
	c.act("/approvals/{id}/approve", config.RoleApprover, func(r *http.Request, op Operator, id string) (outcome, error) {
		t, n, err := op.Approve(r.Context(), id)
		switch t.State {
		case ledger.Delivering:
			return outcome{fmt.Sprintf("Approved (%d approvals): it will be sent.", n), t}, err
		case ledger.Received:
			return outcome{fmt.Sprintf("Approved (%d approvals): released from quarantine, it will be delivered.", n), t}, err
		}
		return outcome{fmt.Sprintf("Approved (%d so far): it waits for more.", n), t}, err
	})
	c.act("/batches/{id}/approve", config.RoleApprover, func(r *http.Request, op Operator, id string) (outcome, error) {
		members, n, err := op.ApproveBatch(r.Context(), id)
		if err != nil {
			return outcome{}, err
		}
		if members[0].State == ledger.Delivering {
			return outcome{fmt.Sprintf("Batch approved (%d approvals): its %d files will be sent.", n, len(members)), members[0]}, nil
		}
		return outcome{fmt.Sprintf("Batch approved (%d so far): its %d files wait for more.", n, len(members)), members[0]}, nil
	})
	c.act("/approvals/{id}/reject", config.RoleApprover, withReason(func(r *http.Request, op Operator, id, reason string) (outcome, error) {
		t, err := op.Reject(r.Context(), id, reason)
		return outcome{"Rejected: nothing was sent.", t}, err
	}))
	c.act("/transfers/{id}/retry", config.RoleOperator, func(r *http.Request, op Operator, id string) (outcome, error) {
		t, err := op.Retry(r.Context(), id)
		return outcome{"Queued again.", t}, err
	})
	c.act("/quarantine/{id}/release", config.RoleOperator, withReason(func(r *http.Request, op Operator, id, reason string) (outcome, error) {
		skipScan := r.PostFormValue("skip_rescan") == "1"
		t, err := op.Release(r.Context(), id, reason, skipScan)
		switch {
		case t.State == ledger.Quarantined:
			return outcome{"Release requested: it waits for approval by others (on the approvals page).", t}, err
		case skipScan:
			return outcome{"Released without a rescan: it will be delivered.", t}, err
		}
		return outcome{"Released: it will be delivered once it scans clean.", t}, err
	}))
	c.act("/quarantine/{id}/delete", config.RoleOperator, withReason(func(r *http.Request, op Operator, id, reason string) (outcome, error) {
		t, err := op.Delete(r.Context(), id, reason)
		return outcome{"Deleted from quarantine.", t}, err
	}))
}

// errNoReason refuses an action that must say why.
var errNoReason = errors.New("a reason is required: it is kept in the audit log")

func withReason(do func(r *http.Request, op Operator, id, reason string) (outcome, error)) action {
	return func(r *http.Request, op Operator, id string) (outcome, error) {
		reason := strings.TrimSpace(r.PostFormValue("reason"))
		if reason == "" {
			return outcome{}, errNoReason
		}
		return do(r, op, id, reason)
	}
}

// act serves an action at path (a form's POST) and at /api/path, for
// people holding role, as them.
func (c *Console) act(path, role string, do action) {
	h := c.withRole(role, func(w http.ResponseWriter, r *http.Request, s *session) {
		id := r.PathValue("id")
		actor := actorOf(s)
		out, err := do(r, c.operate(actor), id)
		switch {
		case errors.Is(err, errNoReason):
			c.fail(w, r, http.StatusBadRequest, "Give a reason: it is kept in the audit log.", nil)
			return
		case errors.Is(err, ledger.ErrOwnApproval), errors.Is(err, ledger.ErrOwnRequest), errors.Is(err, ledger.ErrApprovedBefore):
			// A refusal of four eyes is worth a line in the audit log.
			c.audit(r, ledger.Event{Kind: "approval.refused", Actor: actor.Name, TransferID: id,
				Detail: map[string]string{"person": actor.Person, "reason": err.Error()}})
		}
		if err != nil {
			c.failWith(w, r, err)
			return
		}
		c.log.Info("console action", "path", r.URL.Path, "user", actor.Name, "transfer_id", id, "remote_ip", c.clientIP(r))
		c.render(w, r, http.StatusOK, "done", view{Title: "Done", Data: out, Session: s})
	})
	c.mux.HandleFunc("POST "+path, h)
	c.mux.HandleFunc("POST /api"+path, h)
}
