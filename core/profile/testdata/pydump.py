#!/usr/bin/python3
"""Regenerates pydump.golden: how Pritunl's Python prints a profile header.

The profile header must be byte-for-byte what Pritunl writes with
json.dumps(obj, indent=1, separators=(",", ": ")) (ensure_ascii on), and
core/profile/pyjson.go reimplements that. TestPyDumpMatchesPython prints
the same object with the Go code and compares with pydump.golden;
TestPyDumpGoldenIsPython runs this script and compares its output with
pydump.golden. Keep OBJ and the Go test's tree the same.

Run from core/profile/testdata:
    python3 pydump.py > pydump.golden
or from the module root:
    go test ./core/profile -run '^TestPyDumpGoldenIsPython$' -update
"""
import json
import sys

OBJ = {
    "a": ["x", "y"],
    "b": {},
    "c": [],
    "d": {"1.2.3.4": {"priority": 1}},
    "e": None,
    "s": "\u00e9<&\u2028\U0001F600\x7f\"\\\n",
}

sys.stdout.write(json.dumps(OBJ, indent=1, separators=(",", ": ")) + "\n")
