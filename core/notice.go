package core

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/core/audit"
	"github.com/portcullis-gw/portcullis/notify"
)

// The notification (docs/notifications.md): the poller (package notify)
// keeps the last verified notice and the admin's override; the core
// applies what is in force to the three surfaces — www (the front answers
// 503, frontstate.go), web (the front's listeners closed, websurface.go)
// and vpn (every OpenVPN worker stopped, none started).

// loadNotice builds the poller on the store, which loads the persisted
// state, and records what is in force before anything serves: the front
// learns the www state from its first poll, the workers and the front are
// started (or not) by their own steps according to it.
func (d *daemon) loadNotice(context.Context) error {
	n := d.cfg.Notify
	p, err := notify.New(notify.Config{URL: n.URL, Version: Version, PublicKey: n.PublicKey, Interval: n.Interval,
		Timeout: n.Timeout, RootCAs: n.RootCAs, OnChange: d.noticeChanged}, notify.NewStore(d.st), d.log)
	if err != nil {
		return err
	}
	d.notice = p
	d.svc.notice = p
	d.effects = make(chan struct{}, 1)
	eff := p.Effective()
	d.fstate.set(d.wwwDown(eff), eff.Message)
	d.noticeLine = func() string {
		e := p.Effective()
		return fmt.Sprintf("notification: www %s, web %s, vpn %s (%s)", e.WWW, e.Web, e.VPN, e.Source)
	}
	if n.URL == "" {
		d.log.Info("no notification server configured (notify.url): not polling")
	}
	if eff.Source != notify.SourceDefault {
		d.log.Warn("notification state in force at start", "www", eff.WWW, "web", eff.Web, "vpn", eff.VPN,
			"source", eff.Source, "message", eff.Message)
	}
	return nil
}

// startNotice starts the poll (when a server is configured) and the
// goroutine that applies each change, both stopped with the core.
func (d *daemon) startNotice(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		// A change that could not be applied (the web ports taken when
		// binding them again) is retried every noticeRetry until it is.
		retry := time.NewTimer(noticeRetry)
		retry.Stop()
		defer retry.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-d.effects:
			case <-retry.C:
			}
			if !d.applyNotice(ctx, d.notice.Effective()) {
				retry.Reset(noticeRetry)
			}
		}
	})
	if d.cfg.Notify.URL != "" {
		wg.Go(func() {
			if err := d.notice.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				d.log.Error("notification poll stopped", "err", err)
			}
		})
	}
	d.onStop(func() { cancel(); wg.Wait() })
	return nil
}

// noticeChanged is the poller's OnChange: it records the change and wakes
// the applier (never applying it here: closing the front's listeners waits
// for the front to finish its requests, which may include the very admin
// request that set an override).
func (d *daemon) noticeChanged(s notify.Status) {
	e := s.Effective()
	actor := audit.ActorNotification
	if e.Source == notify.SourceOverride {
		actor = s.Override.By
	}
	d.svc.record(context.Background(), auditEntry{Actor: actor, Action: "notification.change",
		Detail: fmt.Sprintf("www=%s web=%s vpn=%s source=%s message=%q", e.WWW, e.Web, e.VPN, e.Source, e.Message)})
	select {
	case d.effects <- struct{}{}:
	default: // a wake-up is pending; it reads the latest state
	}
}

// noticeRetry is how soon a notification state that could not be applied
// is tried again.
const noticeRetry = 5 * time.Second

// applyNotice puts the three surfaces in the state e says; it reports
// whether everything took effect.
func (d *daemon) applyNotice(ctx context.Context, e notify.Effective) bool {
	ok := true
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	d.fstate.set(d.wwwDown(e), e.Message)
	if d.cfg.Web.External {
		if e.Web == notify.Disabled {
			d.log.Error("web disabled, but with web.external the front's listeners are systemd's: the front answers every request with 503 instead; stop portcullis-web.socket to close them")
		}
	} else if err := d.setWebDisabled(ctx, e.Web == notify.Disabled); err != nil {
		d.log.Error("web surface not changed as the notification says; retrying", "web", e.Web, "err", err,
			"retry_in", noticeRetry)
		ok = false
	}
	m := d.svc.workers
	if m == nil {
		return ok
	}
	switch {
	case e.VPN == notify.Disabled && m.Suspended() == nil:
		why := errors.New("disabled by " + string(e.Source) + noticeSuffix(e.Message))
		// Each worker's end goes into the audit trail (the workers' events).
		stopped := m.Suspend(ctx, why)
		d.log.Warn("vpn disabled: every worker stopped, none starts", "stopped", len(stopped), "source", e.Source)
	case e.VPN == notify.OK && m.Suspended() != nil:
		m.Resume()
		d.log.Info("vpn enabled again: starting the started servers' workers")
		if err := d.svc.startStartedServers(ctx); err != nil {
			d.log.Error("vpn workers not started again", "err", err)
		}
	}
	return ok
}

// wwwDown says whether the front must answer every request with 503: www
// disabled, or web disabled with an external front (whose listeners the
// core cannot close).
func (d *daemon) wwwDown(e notify.Effective) bool {
	return e.WWW == notify.Disabled || (d.cfg.Web.External && e.Web == notify.Disabled)
}

func noticeSuffix(msg string) string {
	if msg == "" {
		return ""
	}
	return ": " + msg
}
