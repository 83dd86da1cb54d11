package store

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func openTemp(t *testing.T) (*Bolt, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "store.db")
	b, err := OpenBolt(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, path
}

func TestBoltCRUD(t *testing.T) {
	b, _ := openTemp(t)
	ctx := context.Background()
	type rec struct{ Name string }
	if err := b.Update(ctx, func(tx Tx) error { return Insert(tx, BucketOrgs, "a", rec{"alpha"}) }); err != nil {
		t.Fatal(err)
	}
	err := b.Update(ctx, func(tx Tx) error { return Insert(tx, BucketOrgs, "a", rec{"again"}) })
	if !errors.Is(err, ErrExists) {
		t.Fatalf("second insert: got %v, want ErrExists", err)
	}
	if err := b.View(ctx, func(tx Tx) error {
		r, err := GetJSON[rec](tx, BucketOrgs, "a")
		if err != nil {
			return err
		}
		if r.Name != "alpha" {
			return fmt.Errorf("got %q", r.Name)
		}
		_, err = tx.Get(BucketOrgs, "missing")
		if !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("missing key: got %v", err)
		}
		_, err = tx.Get("nope", "a")
		if !errors.Is(err, ErrBucket) {
			return fmt.Errorf("unknown bucket: got %v", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestBoltUpdateRollsBackOnError(t *testing.T) {
	b, _ := openTemp(t)
	ctx := context.Background()
	boom := errors.New("boom")
	err := b.Update(ctx, func(tx Tx) error {
		if err := tx.Put(BucketOrgs, "x", []byte("1")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	_ = b.View(ctx, func(tx Tx) error {
		if _, err := tx.Get(BucketOrgs, "x"); !errors.Is(err, ErrNotFound) {
			t.Errorf("write of a failed transaction is visible: %v", err)
		}
		return nil
	})
}

func TestBoltScanPrefixAndStop(t *testing.T) {
	b, _ := openTemp(t)
	ctx := context.Background()
	_ = b.Update(ctx, func(tx Tx) error {
		for _, k := range []string{"o1/a", "o1/b", "o1/c", "o2/a"} {
			if err := tx.Put(BucketUsers, k, []byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	_ = b.View(ctx, func(tx Tx) error {
		n, _ := Count(tx, BucketUsers, "o1/")
		if n != 3 {
			t.Errorf("count o1/ = %d, want 3", n)
		}
		var seen []string
		_ = tx.Scan(BucketUsers, "o1/", func(k string, _ []byte) error {
			seen = append(seen, k)
			if len(seen) == 2 {
				return ErrStop
			}
			return nil
		})
		if strings.Join(seen, ",") != "o1/a,o1/b" {
			t.Errorf("scan with stop saw %v", seen)
		}
		return nil
	})
}

func TestBoltScanReverse(t *testing.T) {
	b, _ := openTemp(t)
	ctx := context.Background()
	_ = b.Update(ctx, func(tx Tx) error {
		for _, k := range []string{"b", "d", "f"} {
			if err := tx.Put(BucketUsers, k, []byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	scan := func(before string, stopAfter int) string {
		var seen []string
		if err := b.View(ctx, func(tx Tx) error {
			return tx.ScanReverse(BucketUsers, before, func(k string, v []byte) error {
				if k != string(v) {
					t.Errorf("key %q has value %q", k, v)
				}
				seen = append(seen, k)
				if len(seen) == stopAfter {
					return ErrStop
				}
				return nil
			})
		}); err != nil {
			t.Fatal(err)
		}
		return strings.Join(seen, ",")
	}
	for _, tc := range []struct {
		before string
		stop   int
		want   string
	}{
		{"", 0, "f,d,b"}, {"z", 0, "f,d,b"}, {"f", 0, "d,b"}, {"e", 0, "d,b"}, {"b", 0, ""}, {"a", 0, ""},
		{"", 2, "f,d"},
	} {
		if got := scan(tc.before, tc.stop); got != tc.want {
			t.Errorf("ScanReverse before %q (stop after %d) = %q, want %q", tc.before, tc.stop, got, tc.want)
		}
	}
	if err := b.View(ctx, func(tx Tx) error { return tx.ScanReverse("nope", "", nil) }); !errors.Is(err, ErrBucket) {
		t.Errorf("unknown bucket: %v", err)
	}
}

// TestBoltNextSequence: sequence numbers count up from 1, are not given
// back by a rolled-back transaction's successor twice, and survive a
// reopen.
func TestBoltNextSequence(t *testing.T) {
	b, path := openTemp(t)
	ctx := context.Background()
	next := func(b *Bolt) uint64 {
		var n uint64
		if err := b.Update(ctx, func(tx Tx) (err error) { n, err = tx.NextSequence(BucketAudit); return err }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if a, c := next(b), next(b); a != 1 || c != 2 {
		t.Fatalf("first sequences %d, %d", a, c)
	}
	_ = b.Update(ctx, func(tx Tx) error {
		_, _ = tx.NextSequence(BucketAudit)
		return errors.New("roll back")
	})
	if n := next(b); n != 3 {
		t.Fatalf("after a rolled-back transaction: %d, want 3", n)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2, err := OpenBolt(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if n := next(b2); n != 4 {
		t.Fatalf("after reopening: %d, want 4", n)
	}
	if err := b2.Update(ctx, func(tx Tx) error { _, err := tx.NextSequence("nope"); return err }); !errors.Is(err, ErrBucket) {
		t.Errorf("unknown bucket: %v", err)
	}
}

func TestBoltSchemaVersionRecorded(t *testing.T) {
	b, path := openTemp(t)
	if b.SchemaVersion() != CurrentSchema() {
		t.Fatalf("version %d, want %d", b.SchemaVersion(), CurrentSchema())
	}
	_ = b.Close()
	// A store written by a newer build is refused, not silently used.
	b2, err := OpenBolt(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = b2.Update(context.Background(), func(tx Tx) error {
		return tx.Put(BucketMeta, schemaKey, []byte(strconv.Itoa(CurrentSchema()+1)))
	})
	_ = b2.Close()
	if _, err := OpenBolt(path, time.Second); err == nil || !strings.Contains(err.Error(), "newer than this build") {
		t.Fatalf("opening a newer schema: got %v", err)
	}
}

func TestBoltLockedByAnotherHandle(t *testing.T) {
	_, path := openTemp(t)
	// bbolt locks with flock per open file description, so a second open in
	// the same process is refused too.
	_, err := OpenBolt(path, 100*time.Millisecond)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("got %v, want ErrLocked", err)
	}
}

// crashRecord is written as two keys in two buckets in one transaction; a
// torn write would show up as one key without the other or a bad checksum.
type crashRecord struct {
	N       int    `json:"n"`
	Payload string `json:"payload"`
	Sum     string `json:"sum"`
}

const crashEnv = "PORTCULLIS_STORE_CRASH_WRITER"

// TestMain runs the crash writer when TestKillDuringWritesLeavesNoTornRecord
// starts this binary as its child.
func TestMain(m *testing.M) {
	if path := os.Getenv(crashEnv); path != "" {
		crashWriter(path)
	}
	os.Exit(m.Run())
}

// crashWriter writes two-key records until it is killed.
func crashWriter(path string) {
	b, err := OpenBolt(path, 5*time.Second)
	if err != nil {
		fmt.Println("open error:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	for i := 0; i < 100000; i++ {
		buf := make([]byte, 8<<10)
		_, _ = rand.Read(buf)
		payload := hex.EncodeToString(buf)
		sum := sha256.Sum256([]byte(payload))
		r := crashRecord{N: i, Payload: payload, Sum: hex.EncodeToString(sum[:])}
		key := fmt.Sprintf("%08d", i)
		if err := b.Update(ctx, func(tx Tx) error {
			if err := PutJSON(tx, BucketOrgs, key, r); err != nil {
				return err
			}
			return tx.Put(BucketUsers, key, []byte(r.Sum))
		}); err != nil {
			fmt.Println("write error:", err)
			os.Exit(2)
		}
		fmt.Println("committed", i)
	}
	os.Exit(0)
}

func TestKillDuringWritesLeavesNoTornRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crash.db")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Let it commit a good number of records, then kill it mid-stream.
	sc := bufio.NewScanner(out)
	lastCommitted := -1
	deadline := time.Now().Add(30 * time.Second)
	for sc.Scan() && time.Now().Before(deadline) {
		line := sc.Text()
		if n, ok := strings.CutPrefix(line, "committed "); ok {
			lastCommitted, _ = strconv.Atoi(n)
			if lastCommitted >= 200 {
				break
			}
		} else {
			t.Fatalf("writer: %s", line)
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if lastCommitted < 200 {
		t.Fatalf("writer committed only %d records before the deadline", lastCommitted)
	}

	b, err := OpenBolt(path, time.Second)
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	defer b.Close()
	if err := b.Check(); err != nil {
		t.Fatalf("consistency check after SIGKILL: %v", err)
	}
	var records, users int
	err = b.View(context.Background(), func(tx Tx) error {
		users, _ = Count(tx, BucketUsers, "")
		return tx.Scan(BucketOrgs, "", func(key string, raw []byte) error {
			records++
			r, err := GetJSON[crashRecord](tx, BucketOrgs, key)
			if err != nil {
				return err
			}
			sum := sha256.Sum256([]byte(r.Payload))
			if hex.EncodeToString(sum[:]) != r.Sum {
				return fmt.Errorf("record %s: checksum mismatch", key)
			}
			other, err := tx.Get(BucketUsers, key)
			if err != nil {
				return fmt.Errorf("record %s: second half missing: %w", key, err)
			}
			if string(other) != r.Sum {
				return fmt.Errorf("record %s: halves disagree", key)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if records != users {
		t.Fatalf("%d records but %d second halves", records, users)
	}
	// Every commit the writer reported before the kill is durable.
	if records < lastCommitted+1 {
		t.Fatalf("only %d records survived, writer had reported %d commits", records, lastCommitted+1)
	}
	t.Logf("killed after %d reported commits; %d whole records found, none torn", lastCommitted+1, records)
}
