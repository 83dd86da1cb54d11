#!/usr/bin/python3
"""Recomputes the deterministic parts of approval_vectors.json with PyNaCl and
Python's hmac (the libraries Pritunl itself uses) and prints one line per
value, for api/crosscheck_test.go to compare with the Go implementation."""
import base64, hashlib, hmac, json, sys
from nacl.public import Box, PrivateKey, PublicKey

v = json.load(open(sys.argv[1]))
server_sk = PrivateKey(bytes.fromhex(v["server_box_secret_hex"]))
client_sk = PrivateKey(bytes.fromhex(v["client_secret_hex"]))
b64 = lambda b: base64.b64encode(b).decode()

out = {}
out["server_box_public_key"] = b64(bytes(server_sk.public_key))
out["client_public_key"] = b64(bytes(client_sk.public_key))
box = Box(client_sk, server_sk.public_key)
out["data"] = b64(box.encrypt(v["inner_plaintext"].encode(), bytes.fromhex(v["box_nonce_hex"]))[24:])
body = json.loads(v["body_json"])
digest = hashlib.sha512("&".join([body["data"], body["nonce"], body["public_key"]]).encode()).hexdigest()
out["digest_sha512_hex"] = digest
msg = "&".join([v["sync_token"], v["auth_timestamp"], v["auth_nonce"], "POST", v["path"],
                body["data"], body["nonce"], body["public_key"], body["signature"]])
out["hmac_message"] = msg
out["auth_signature"] = b64(hmac.new(v["sync_secret"].encode(), msg.encode(), hashlib.sha512).digest())
rbox = Box(server_sk, client_sk.public_key)
out["response_data"] = b64(rbox.encrypt(v["response_plaintext"].encode(), bytes.fromhex(v["response_nonce_hex"]))[24:])
out["response_signature"] = b64(hmac.new(v["sync_secret"].encode(),
                                         (out["response_data"] + "&" + v["response_nonce"]).encode(), hashlib.sha512).digest())
# $f$ credential: ephemeral key E, nonce = SHA-256(E.pub)[:24].
e = PrivateKey(bytes.fromhex(v["credential_secret_hex"]))
nonce = hashlib.sha256(bytes(e.public_key)).digest()[:24]
ct = Box(e, server_sk.public_key).encrypt(v["credential_token"].encode(), nonce)[24:]
raw = lambda b: base64.b64encode(b).decode().rstrip("=")
out["credential_username"] = raw(bytes(e.public_key))
out["credential_password"] = "$f$" + raw(ct)
# RSA-PSS exactly as Pritunl verifies it: SHA-512, MGF1-SHA512, salt length
# PSS.MAX_LENGTH, over the prehashed digest.
if len(sys.argv) > 2:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, utils
    for bits, field in (("2048", "signature_2048"), ("4096", "signature_4096")):
        key = serialization.load_pem_private_key(open(sys.argv[2] + "/user" + bits + ".pem", "rb").read(), None)
        try:
            key.public_key().verify(base64.b64decode(v[field]), bytes.fromhex(digest),
                                    padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=padding.PSS.MAX_LENGTH),
                                    utils.Prehashed(hashes.SHA512()))
            out["pss_" + bits] = "valid"
        except Exception as e:  # noqa
            out["pss_" + bits] = "invalid: " + repr(e)
json.dump(out, sys.stdout, sort_keys=True)
