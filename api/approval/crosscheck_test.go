package approval

import (
	"encoding/json"
	"os"
	"os/exec"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/testenv"
)

// TestVectorsAgreeWithPyNaCl recomputes the recorded vectors with PyNaCl and
// Python's hmac — the libraries the Pritunl server uses — and requires byte
// equality with what the Go envelope produced (§14G of the reference).
func TestVectorsAgreeWithPyNaCl(t *testing.T) {
	// Debian's python3-nacl installs for the system interpreter, which a
	// PATH python (pyenv, venv) may not be: testenv.Python prefers it.
	py := testenv.NeedPython(t)
	testenv.NeedPythonModule(t, py, "nacl", "python3-nacl")
	withPSS := testenv.Have(t, testenv.PythonHas(py, "cryptography"), "the Python module cryptography to cross-check RSA-PSS", "python3-cryptography")
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
