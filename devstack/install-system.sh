#!/usr/bin/env bash
# Install the Debian packages the local stack and the tests need, if any is missing.
set -euo pipefail
# With arguments: those packages instead (make client-e2e: chromium).
# python3.11 + libpython3.11: the interpreter cocotb testbenches run with inside the sandbox;
# z3: the formal jobs' solver; graphviz: synthesis schematics; nextpnr-ice40 + fpga-icestorm
# (icepack): FPGA builds; jq: the README's curl examples; util-linux (essential on Debian, so
# normally present): prlimit and setpriv, through which the runner starts a sandboxed step.
packages=(git iverilog yosys verilator g++ make bubblewrap wrk gtkwave z3 graphviz python3.11 libpython3.11
          nextpnr-ice40 fpga-icestorm jq util-linux)
[ $# -eq 0 ] || packages=("$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "[a6hub] Debian packages present: ${packages[*]}"
  exit 0
fi
echo "[a6hub] installing Debian packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
echo "[a6hub] installed: ${missing[*]}"
