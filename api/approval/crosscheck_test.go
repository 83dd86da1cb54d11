package approval

import (
	"encoding/json"
	"os"
	"os/exec"
	"testing"
)

// TestVectorsAgreeWithPyNaCl recomputes the recorded vectors with PyNaCl and
// Python's hmac — the libraries the Pritunl server uses — and requires byte
// equality with what the Go envelope produced (§14G of the reference).
func TestVectorsAgreeWithPyNaCl(t *testing.T) {
	// Debian's python3-nacl installs for the system interpreter, which a
	// PATH python (pyenv, venv) may not be.
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		if py, err = exec.LookPath("python3"); err != nil {
			t.Skip("python3 not installed")
		}
	}
	if exec.Command(py, "-c", "import nacl").Run() != nil {
		t.Skip("python3-nacl not installed (apt-get install python3-nacl)")
	}
	withPSS := exec.Command(py, "-c", "import cryptography").Run() == nil
	args := []string{"testdata/crosscheck.py", vectorsFile}
	if withPSS {
		args = append(args, "testdata")
	}
	out, err := exec.Command(py, args...).Output()
	if err != nil {
		t.Fatalf("crosscheck.py: %v", err)
	}
	var got map[string]string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	wantN := 10
	if withPSS {
		// Pritunl's own check of the user signature: exactly the maximal
		// salt, which Go's signer uses.
		for _, k := range []string{"pss_2048", "pss_4096"} {
			if got[k] != "valid" {
				t.Errorf("%s: python cryptography says %s", k, got[k])
			}
			delete(got, k)
		}
	} else {
		t.Log("python3-cryptography not installed: RSA-PSS not cross-checked")
	}
	if len(got) != wantN {
		t.Fatalf("python computed %d values, want %d", len(got), wantN)
	}
	for k, v := range got {
		if want[k] != v {
			t.Errorf("%s: python %q, Go vectors %q", k, v, want[k])
		}
	}
}
