#!/usr/bin/env bash
# Install the Debian packages qtool builds, tests and runs with.
#   scripts/deps.sh                    install what is missing (apt-get update first)
#   scripts/deps.sh --check-or-install the same, silent when everything is there
# When not root, prints the exact command instead of running it.
set -euo pipefail

PKGS=(build-essential pkg-config
      libprotobuf-c-dev protobuf-c-compiler libcjson-dev libopenblas-dev libcriterion-dev
      libglpk-dev libonnx-dev libonnx-testdata zlib1g-dev dataset-fashion-mnist clang
      chromium)

missing=()
for p in "${PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	[ "${1:-}" = "--check-or-install" ] || echo "deps: all ${#PKGS[@]} packages already installed"
	exit 0
fi

echo "deps: missing: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		SUDO=sudo
	else
		echo "deps: not root; run:"
		echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}"
		exit 1
	fi
else
	SUDO=
fi
# A new machine's package lists are stale or empty: update first.
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
