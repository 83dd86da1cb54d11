#!/usr/bin/env bash
# Installs what `make bench` uses beyond the test dependencies: the nft
# binary, against which the approval benchmark compares its netlink path,
# openvpn (the tunnel benchmark's workers and client) and etcd-server (the
# cluster benchmark's members). Only as root
# (those benchmarks need root anyway); idempotent.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
  exit 0
fi
missing=()
command -v nft >/dev/null || missing+=(nftables)
command -v ip >/dev/null || missing+=(iproute2)
command -v openvpn >/dev/null || missing+=(openvpn)
command -v etcd >/dev/null || missing+=(etcd-server) # the cluster benchmark's etcd members
if [ "${#missing[@]}" -gt 0 ]; then
  echo "bench-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
