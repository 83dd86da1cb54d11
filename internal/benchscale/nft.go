package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/floor"
)

// addCost is the cost of one element add: medians over the samples.
type addCost struct {
	n         int
	cpu, wall time.Duration // medians
}

// addFigures are the element add figures: into the empty set, the fill,
// and into the full set.
type addFigures struct {
	empty, full addCost
	setSize     int
	fill        int           // elements asked for
	fillErr     error         // the fill's error (dynfw.ErrSetFull: the set is too small)
	fillWall    time.Duration // the fill's one Allow call
	held        int           // elements the kernel holds after the fill
	listWall    time.Duration // listing them over netlink (dynfw.NFTGate.Elements)
}

// elementAdds opens the gate in the namespace at nsPath as the core does
// (dynfw.OpenNFT with the default set size, Ensure), measures samples adds
// of one element each (dynfw.NFTGate.Allow, as an approval makes it) into
// the empty allow set, fills the set with fill elements that have
// timeouts, as approvals' elements have, and measures samples adds again.
func elementAdds(nsPath string, samples, fill int, log *slog.Logger) (*addFigures, error) {
	f, err := os.Open(nsPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	gate, err := dynfw.OpenNFT(log, int(f.Fd()))
	if err != nil {
		return nil, fmt.Errorf("open the gate in %s: %w", nsPath, err)
	}
	defer gate.Close()
	if err := gate.Ensure(); err != nil {
		return nil, fmt.Errorf("create the table: %w", err)
	}
	out := &addFigures{fill: fill, setSize: dynfw.DefaultAllowSetSize}
	// Sample addresses in 100.64.0.0/10 (never the fill's 10.0.0.0/8), a
	// new one for every add.
	next := uint32(100<<24 | 64<<16)
	if out.empty, err = measureAdds(gate, samples, &next); err != nil {
		return nil, fmt.Errorf("adds into the empty set: %w", err)
	}
	els := make([]dynfw.Element, fill)
	for i := range els {
		els[i] = dynfw.Element{Addr: addr4(10<<24 + uint32(i)), Proto: "udp", Port: 1194,
			Timeout: 10*time.Minute + time.Duration(i%600)*time.Second}
	}
	start := time.Now()
	out.fillErr = gate.Allow(els)
	out.fillWall = time.Since(start)
	// Counted on a connection of its own: a failed fill can leave the
	// gate's connection out of step with the kernel's answers.
	start = time.Now()
	out.held, err = kernelElements(nsPath)
	out.listWall = time.Since(start)
	if err != nil {
		return nil, fmt.Errorf("list the set after the fill (fill: %v): %w", out.fillErr, err)
	}
	if out.fillErr != nil {
		return out, nil
	}
	if out.full, err = measureAdds(gate, samples, &next); err != nil {
		return nil, fmt.Errorf("adds into the filled set: %w", err)
	}
	return out, nil
}

// warmUp is how many adds measureAdds makes before it measures.
const warmUp = 20

// measureAdds makes n adds of one new element each on a goroutine locked
// to its thread, and returns the medians of their thread CPU and wall time.
func measureAdds(gate *dynfw.NFTGate, n int, next *uint32) (addCost, error) {
	type result struct {
		cpu, wall []time.Duration
		err       error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var res result
		// The first adds of a connection cost more (caches, the first
		// allocations): warmUp adds before the measured ones.
		for i := -warmUp; i < n; i++ {
			e := []dynfw.Element{{Addr: addr4(*next), Proto: "udp", Port: 1194, Timeout: 3 * time.Minute}}
			*next++
			w0, c0 := time.Now(), floor.ThreadCPU()
			if c0 == 0 {
				res.err = errors.New("the thread's CPU clock cannot be read")
				break
			}
			if err := gate.Allow(e); err != nil {
				res.err = err
				break
			}
			if i >= 0 {
				res.cpu = append(res.cpu, floor.ThreadCPU()-c0)
				res.wall = append(res.wall, time.Since(w0))
			}
		}
		ch <- res
	}()
	res := <-ch
	if res.err != nil {
		return addCost{}, res.err
	}
	return addCost{n: n, cpu: median(res.cpu), wall: median(res.wall)}, nil
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func addr4(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// discard is a logger that drops everything.
func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
