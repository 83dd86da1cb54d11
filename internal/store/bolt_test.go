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
