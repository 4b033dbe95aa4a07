#!/usr/bin/env bash
# cairn's one test command (README.md, "Test"): installs what the tests need on a fresh Debian machine, then runs
# every test of the workspace. It passes by itself; no test skips because a tool is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use as real peers and tools: dnsutils gives the DNS e2e tests `dig`; serf is the real
# memberlist/Serf peer of the gossip interop tests.
packages=(dnsutils serf)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi

# Unit, integration and e2e tests, plus every bench binary in test mode (a token run, so benches keep working).
cargo test --workspace --all-targets
cargo test --workspace --doc
