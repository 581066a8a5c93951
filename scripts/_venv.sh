# Sourced by scripts/bake and scripts/test: makes .venv from requirements.txt once, and again when it changes.
# Needs only python3 (3.11 or newer) with venv and pip; every tool comes from PyPI through requirements.txt.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: $PYTHON must be Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
  exit 2
fi

wanted="$("$PYTHON" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$ROOT/requirements.txt")"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$wanted" ]; then
  echo "Installing the template's tools into $VENV (once) ..." >&2
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$ROOT/requirements.txt"
  echo "$wanted" > "$VENV/.requirements.sha256"
fi
