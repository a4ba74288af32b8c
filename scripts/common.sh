# shellcheck shell=bash disable=SC2034  # ROOT and PYTHON are for the sourcing script
# Sourced by the scripts in this folder: strict mode, the repo root, and the one
# place that decides which Python runs the reporting code.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Debian's matplotlib is visible to /usr/bin/python3 only; a python3 earlier on
# PATH (pyenv, a venv) may not see it. Prefer the system one, accept any that works.
# A function, not a top-level assignment: scripts/bench must run setup (which may
# install matplotlib) before asking.
find_python() {
  local candidate
  for candidate in /usr/bin/python3 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import matplotlib, numpy' >/dev/null 2>&1; then
      PYTHON="$candidate"
      return 0
    fi
  done
  echo "error: matplotlib/numpy not importable; run scripts/setup" >&2
  exit 1
}

# Quiet on success; the full log on failure, since that is when it matters.
run_logged() {
  local log
  log="$(mktemp)"
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "error: '$*' failed" >&2
    exit 1
  fi
  rm -f "$log"
}
