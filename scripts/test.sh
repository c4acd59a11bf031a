#!/usr/bin/env bash
# The one test command (`make test` calls this). On a fresh machine it:
#   1. makes a Python venv (.venv) with the pinned tools of
#      scripts/requirements-test.txt (moto server, cfn-lint, SAM CLI),
#   2. starts moto on 127.0.0.1 on a free port,
#   3. lints template.yaml with cfn-lint and `sam validate --lint`, offline,
#   4. runs cargo fmt --check and clippy -D warnings,
#   5. builds every function with `sam build` for x86_64 (the zip contents a
#      deploy uploads) into target/sam/build,
#   6. runs every test in the workspace, with the AWS suites pointed at moto
#      and the deploy rehearsal at the built binaries,
#   7. stops moto, whether the tests passed or not.
set -euo pipefail
cd "$(dirname "$0")/.."

REQUIREMENTS=scripts/requirements-test.txt
VENV=${STOREFRONT_VENV:-.venv}
PYTHON=${PYTHON:-python3}

step() { printf '\n==> %s\n' "$*"; }

if ! command -v cargo >/dev/null; then
  echo "error: cargo is not on PATH; install Rust (https://rustup.rs) and try again" >&2
  exit 1
fi
if ! command -v "$PYTHON" >/dev/null; then
  echo "error: $PYTHON is not on PATH; the AWS tests need Python 3.9+ for the moto server" >&2
  exit 1
fi

step "Python venv with the pinned tools of $REQUIREMENTS in $VENV"
# Keyed on the requirements file's hash, so changing a pin re-installs.
want=$("$PYTHON" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$REQUIREMENTS")
have=$(cat "$VENV/.requirements-test.sha256" 2>/dev/null || true)
if [ ! -x "$VENV/bin/python" ] || [ "$want" != "$have" ]; then
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  echo "$want" >"$VENV/.requirements-test.sha256"
fi

step "starting moto on 127.0.0.1"
mkdir -p target
port=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# scripts/moto_server.py is moto_server with DynamoDB calls serialised (its
# conditional writes and transactions are not safe under concurrent requests).
"$VENV/bin/python" scripts/moto_server.py -H 127.0.0.1 -p "$port" >target/moto.log 2>&1 &
moto_pid=$!
cleanup() {
  local rc=$?
  set +e
  kill "$moto_pid" 2>/dev/null
  wait "$moto_pid" 2>/dev/null
  exit "$rc"
}
trap cleanup EXIT INT TERM
"$VENV/bin/python" - "$port" <<'PY'
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/moto-api/"
for _ in range(300):
    try:
        urllib.request.urlopen(url, timeout=1)
        sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit("moto did not start within 30 s; see target/moto.log")
PY
export STOREFRONT_DYNAMODB_ENDPOINT="http://127.0.0.1:$port"
# The same moto serves EventBridge and SQS for the publisher's suite.
export STOREFRONT_AWS_ENDPOINT="$STOREFRONT_DYNAMODB_ENDPOINT"
# The AWS-path end-to-end tests deploy template.yaml to that moto with
# scripts/deploy_moto.py, which needs this venv (aws-sam-translator, boto3).
export STOREFRONT_PYTHON="$PWD/$VENV/bin/python"
echo "moto at $STOREFRONT_AWS_ENDPOINT (log: target/moto.log)"

step "template.yaml: cfn-lint with the Serverless Rules, and sam validate --lint (offline)"
# Both only read the template. SAM CLI still wants a region and credentials
# to start (dummies here), would send telemetry, and checks PyPI for a newer
# version once a week: telemetry is switched off, and its settings live in
# target/sam-cli with the last version check stamped "now", so the check is
# never due. Where unprivileged network namespaces work (Linux), both tools
# run in one with no network at all, so nothing can slip out.
offline=()
if unshare -rn true 2>/dev/null; then offline=(unshare -rn); fi
mkdir -p target/sam-cli
"$VENV/bin/python" -c 'import json, sys, time; json.dump({"telemetryEnabled": False, "lastVersionCheck": time.time()}, open(sys.argv[1], "w"))' target/sam-cli/metadata.json
# With AWS's Serverless Rules (cfn-lint-serverless); the template states why
# it suppresses the two it does.
${offline[@]+"${offline[@]}"} "$VENV/bin/cfn-lint" --append-rules cfn_lint_serverless.rules -- template.yaml
env AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_SESSION_TOKEN=test \
  AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
  SAM_CLI_TELEMETRY=0 __SAM_CLI_APP_DIR="$PWD/target/sam-cli" \
  ${offline[@]+"${offline[@]}"} "$VENV/bin/sam" validate --lint --region us-east-1 --template-file template.yaml

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "sam build (x86_64): every function's bootstrap, as a deploy uploads it"
# The template defaults to arm64 (Graviton); this machine builds x86_64 only.
# cargo-lambda (from the venv) compiles with `--release`, into target/.
# With the deploy profile's settings (Cargo.toml [profile.deploy]), as
# `make deploy` builds them; a subshell keeps them from the cargo test below.
sam_started=$(date +%s)
(
eval "$("$VENV/bin/python" scripts/deploy_profile.py)"
env PATH="$PWD/$VENV/bin:$PATH" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
  AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
  SAM_CLI_TELEMETRY=0 __SAM_CLI_APP_DIR="$PWD/target/sam-cli" \
  "$VENV/bin/sam" build --template-file template.yaml --build-dir target/sam/build \
  --parameter-overrides Architecture=x86_64
)
echo "sam build took $(( $(date +%s) - sam_started )) s"
# The rehearsal suite (infra/tests/rehearsal.rs) runs these binaries on moto.
export STOREFRONT_ARTIFACTS="$PWD/target/sam/build"

step "cargo test --workspace"
cargo test --workspace

step "schemathesis against openapi.json and the local runtime"
bash scripts/schemathesis.sh
