package etcdlab

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// TestKillRestart: a three-member cluster becomes healthy; a killed member
// stops answering, and once restarted on its data it rejoins and the
// cluster is healthy again.
func TestKillRestart(t *testing.T) {
	c := Start(t, 3)
	if len(c.Endpoints()) != 3 {
		t.Fatalf("endpoints %v", c.Endpoints())
	}
	client := &http.Client{Timeout: time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	c.Kill(2)
	if c.Members()[2].Running() {
		t.Fatal("a killed member still runs")
	}
	if ok, _ := health(ctx, client, c.Members()[2].ClientURL); ok {
		t.Fatal("a killed member answers")
	}
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatalf("two of three members: %v", err)
	}
	c.Restart(2)
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	if ok, why := health(ctx, client, c.Members()[2].ClientURL); !ok {
		t.Fatalf("the restarted member: %s", why)
	}
}
