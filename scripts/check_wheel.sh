#!/usr/bin/env bash
# Build the wheel and prove it works on its own: install it into a fresh venv (no source tree on the path),
# run `scrawn demo` (raw clients and the SDK), then `scrawn serve` until /readyz answers, fetch the dashboard and its assets, and stop it with SIGTERM (exit 0 expected).
# Usage: bash scripts/check_wheel.sh   (needs `build` and `hatchling`, both in the dev extra)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
work=$(mktemp -d)
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

"$python" -m build --wheel --no-isolation --outdir "$work/dist" . >/dev/null
wheel=$(ls "$work"/dist/scrawn-*.whl)
unzip -Z1 "$wheel" | grep 'LICENSE' >/dev/null ||  # no -q: an early exit would SIGPIPE unzip under pipefail
  { echo "error: the wheel carries no LICENSE" >&2; exit 1; }
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet "$wheel[server]"

cd "$work"  # nothing of the checkout is importable from here
"$work/venv/bin/scrawn" demo > demo.log 2>&1 || { cat demo.log; exit 1; }
grep -q "Event stored" demo.log || { cat demo.log; echo "error: the demo stored no event" >&2; exit 1; }
grep -q 'wallet.balance("dave")' demo.log || { cat demo.log; echo "error: the demo's SDK calls did not run" >&2; exit 1; }
grep -q "Run it for real" demo.log || { cat demo.log; echo "error: the demo printed no next steps" >&2; exit 1; }

port=$("$work/venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$work/venv/bin/scrawn" serve --host 127.0.0.1 --port "$port" --data-dir "$work/serve" > serve.log 2>&1 &
server=$!
for _ in $(seq 1 120); do
  if "$work/venv/bin/python" -c "import httpx,sys; sys.exit(httpx.get('http://127.0.0.1:$port/readyz').status_code != 200)" 2>/dev/null; then
    break
  fi
  sleep 0.5
done
"$work/venv/bin/python" -c "import httpx; httpx.get('http://127.0.0.1:$port/readyz').raise_for_status()" \
  || { cat serve.log; echo "error: scrawn serve from the wheel never became ready" >&2; exit 1; }
# The dashboard's templates and vendored assets ship in the wheel, and the JSON API describes itself.
for path in /dashboard/sign-in /dashboard/static/dashboard.css /dashboard/static/LICENSES.md /api/v1/openapi.json; do
  "$work/venv/bin/python" -c "import httpx; httpx.get('http://127.0.0.1:$port$path').raise_for_status()" \
    || { echo "error: GET $path failed on the wheel's server" >&2; exit 1; }
done
kill -TERM "$server"
status=0; wait "$server" || status=$?
server=""
[ "$status" -eq 0 ] || { cat serve.log; echo "error: scrawn serve exited $status on SIGTERM" >&2; exit 1; }
echo "wheel ok: $(basename "$wheel") installs, runs the demo and serves"
