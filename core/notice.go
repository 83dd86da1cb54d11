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
// state, and records what is in force before anything is bound or serves:
// the front learns the www state from its first poll; the listeners, the
// workers and the front are started (or not) by their own steps according
// to it.
func (d *daemon) loadNotice(context.Context) error {
	n := d.cfg.Notify
	p, err := notify.New(notify.Config{URL: n.URL, Version: Version, PublicKey: n.PublicKey, Interval: n.Interval,
		Timeout: n.Timeout, RootCAs: n.RootCAs, OnChange: d.noticeChanged}, notify.NewStore(d.st), d.log)
	if err != nil {
		return err
	}
	d.notice = p
	d.effects = make(chan struct{}, 1)
	eff := p.Effective()
	d.fstate.set(d.wwwDown(eff), eff.Message)
	d.noticeLine = func() string {
		e := p.Effective()
		line := fmt.Sprintf("notification: www %s, web %s, vpn %s (%s)", e.WWW, e.Web, e.VPN, e.Source)
		if msg := d.svc.noticeApplyErr.Load(); msg != nil {
			line += ", NOT APPLIED: " + *msg
		}
		return line
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
		// A state that could not be applied (the web ports could not
		// listen again) is retried with back-off until it is; the admin
		// API and the status line show the error meanwhile.
		retry := time.NewTimer(noticeRetry)
		retry.Stop()
		defer retry.Stop()
		backoff := noticeRetry
		for {
			select {
			case <-ctx.Done():
				return
			case <-d.effects:
				backoff = noticeRetry
			case <-retry.C:
			}
			if err := d.applyNotice(ctx, d.notice.Effective()); err != nil {
				d.svc.noticeApplyErr.Store(new(err.Error()))
				d.log.Error("notification state not applied; retrying", "err", err, "retry_in", backoff)
				retry.Reset(backoff)
				backoff = min(2*backoff, noticeRetryMax)
			} else {
				d.svc.noticeApplyErr.Store(nil)
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

// A notification state that could not be applied is tried again after
// noticeRetry, doubling up to noticeRetryMax.
const (
	noticeRetry    = 5 * time.Second
	noticeRetryMax = 5 * time.Minute
)

// applyNotice puts the three surfaces in the state e says; the error says
// what did not take effect.
func (d *daemon) applyNotice(ctx context.Context, e notify.Effective) error {
	var failed error
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	d.fstate.set(d.wwwDown(e), e.Message)
	if d.cfg.Web.External {
		if e.Web == notify.Disabled {
			d.log.Error("web disabled, but with web.external the front's listeners are systemd's: the front answers every request with 503 instead; stop portcullis-web.socket to close them")
		}
	} else if err := d.setWebDisabled(ctx, e.Web == notify.Disabled); err != nil {
		failed = fmt.Errorf("web %s: %w", e.Web, err)
	}
	m := d.svc.workers
	if m == nil {
		return failed
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
	return failed
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
