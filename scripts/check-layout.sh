#!/usr/bin/env bash
# Layout checks: no production `.rs` file over 1,000 lines, no module import cycle inside
# any crate. The rules (what counts as test code, how the module graph is built and which
# references form a cycle) are in scripts/check_layout.py's docstring.
#
#   ./scripts/check-layout.sh            unit-test the checker, then check the workspace
#   ./scripts/check-layout.sh --edges    print every crate's module references
#
# Exits 1, printing each offence, when the workspace breaks a rule.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
export PYTHONDONTWRITEBYTECODE=1

if ! out=$(python3 -m unittest discover -s "$here" -p 'test_check_layout.py' 2>&1); then
    printf '%s\n' "$out" >&2
    echo "check-layout: the checker's own tests failed" >&2
    exit 1
fi
exec python3 "$here/check_layout.py" "$root" "$@"
