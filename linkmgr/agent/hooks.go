package agent

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"time"
)

// hookTimeout bounds one run of the hook.
const hookTimeout = 10 * time.Second

// hooks runs the hook (no shell) for every connection that came up or went
// down since the last round, with the details in PORTCULLIS_LINK_*
// environment variables, and remembers up.
func (a *Agent) hooks(ctx context.Context, up map[string]bool) {
	defer func() { a.up = up }()
	if a.cfg.Hook == "" {
		return
	}
	for _, name := range sortedKeys(up) {
		if !a.up[name] {
			a.runHook(ctx, "up", name)
		}
	}
	for _, name := range sortedKeys(a.up) {
		if !up[name] {
			a.runHook(ctx, "down", name)
		}
	}
}

func (a *Agent) runHook(ctx context.Context, event, name string) {
	hctx, cancel := context.WithTimeout(ctx, hookTimeout)
	defer cancel()
	cmd := exec.CommandContext(hctx, a.cfg.Hook)
	cmd.Env = append(os.Environ(), "PORTCULLIS_LINK_EVENT="+event, "PORTCULLIS_LINK_CONN="+name)
	if p := a.want[name]; p != nil {
		cmd.Env = append(cmd.Env, "PORTCULLIS_LINK_REMOTE="+p.RemoteAddress,
			"PORTCULLIS_LINK_LOCAL_SUBNETS="+strings.Join(p.LocalSubnets, ","),
			"PORTCULLIS_LINK_REMOTE_SUBNETS="+strings.Join(p.RemoteSubnets, ","))
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		a.log.Warn("hook failed", "event", event, "conn", name, "err", err, "output", strings.TrimSpace(string(out)))
	}
}
