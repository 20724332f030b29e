#!/usr/bin/env bash
# Runs every tests/cli/test_*.sh against the real binary ($QTOOL).
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${QTOOL:=build/release/qtool}"
export QTOOL
source tests/cli/lib.sh
for t in tests/cli/test_*.sh; do
	echo "== $t"
	source "$t"
done
summary
