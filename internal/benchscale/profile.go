package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/portcullis-gw/portcullis/core"
	"github.com/portcullis-gw/portcullis/dynfw"
	"github.com/portcullis-gw/portcullis/internal/netlab"
	"github.com/portcullis-gw/portcullis/internal/procstat"
	"github.com/portcullis-gw/portcullis/internal/store"
)

// profileReconcile runs, in this process, the reconcile the core runs at
// start (dynfw.Approver.Reconcile on the store at storePath, the core's
// directory, a fresh gate in a namespace of its own) under a CPU profile,
// then writes a heap profile (allocations since the start) to outDir, and
// prints its wall time and this process's memory around it. -pprof turns
// it on; it guides changes, the core's own figures are the measurement.
func profileReconcile(r netlab.T, storePath string, port uint16, outDir string) error {
	ns := netlab.NewNS(r, "scaleprof")
	f, err := os.Open(ns.Path())
	if err != nil {
		return err
	}
	defer f.Close()
	gate, err := dynfw.OpenNFT(discard(), int(f.Fd()))
	if err != nil {
		return err
	}
	defer gate.Close()
	st, err := store.OpenBolt(storePath, 2*time.Second)
	if err != nil {
		return err
	}
	defer st.Close()
	ap := dynfw.NewApprover(dynfw.Config{MaxUserElements: 10}, core.NewDirectory(st), st, gate, discard())
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	cpu, err := os.Create(filepath.Join(outDir, "reconcile.cpu.pprof"))
	if err != nil {
		return err
	}
	defer cpu.Close()
	runtime.GC()
	memBefore, err := procstat.Memory(os.Getpid())
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	added, removed, err := ap.Reconcile(ctx, []dynfw.ProtoPort{{Proto: "udp", Port: port}})
	wall := time.Since(start)
	pprof.StopCPUProfile()
	if err != nil {
		return fmt.Errorf("in-process reconcile: %w", err)
	}
	memAfter, err := procstat.Memory(os.Getpid())
	if err != nil {
		return err
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap, err := os.Create(filepath.Join(outDir, "reconcile.heap.pprof"))
	if err != nil {
		return err
	}
	defer heap.Close()
	if err := pprof.Lookup("allocs").WriteTo(heap, 0); err != nil {
		return err
	}
	fmt.Printf("\nin-process reconcile (-pprof %s): %v wall, added %d, removed %d; RssAnon %d → %d KiB, RssFile %d → %d KiB, "+
		"HeapInuse %d KiB, HeapSys %d KiB, TotalAlloc %d KiB\n", outDir, wall.Round(time.Millisecond), added, removed,
		memBefore.RssAnon, memAfter.RssAnon, memBefore.RssFile, memAfter.RssFile, ms.HeapInuse>>10, ms.HeapSys>>10, ms.TotalAlloc>>10)
	// Again, as at a restart: the table and its elements are there.
	again, err := os.Create(filepath.Join(outDir, "reconcile-again.cpu.pprof"))
	if err != nil {
		return err
	}
	defer again.Close()
	if err := pprof.StartCPUProfile(again); err != nil {
		return err
	}
	start = time.Now()
	added, removed, err = ap.Reconcile(ctx, []dynfw.ProtoPort{{Proto: "udp", Port: port}})
	wall = time.Since(start)
	pprof.StopCPUProfile()
	if err != nil {
		return fmt.Errorf("in-process reconcile again: %w", err)
	}
	fmt.Printf("in-process reconcile again (table kept): %v wall, added %d, removed %d\n", wall.Round(time.Millisecond), added, removed)
	return nil
}
