#!/usr/bin/env bash
# Installs what `make bench` uses beyond the test dependencies: the nft
# binary, against which the approval benchmark compares its netlink path,
# and openvpn (the tunnel benchmark's workers and client). Only as root
# (those benchmarks need root anyway); idempotent.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
  exit 0
fi
missing=()
command -v nft >/dev/null || missing+=(nftables)
command -v ip >/dev/null || missing+=(iproute2)
command -v openvpn >/dev/null || missing+=(openvpn)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "bench-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
