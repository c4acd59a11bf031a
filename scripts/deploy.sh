#!/usr/bin/env bash
# `make deploy`: build every function and deploy template.yaml to AWS with
# SAM, the way README's "Deploying to AWS" describes. It
#   1. makes a Python venv (.venv-deploy) with the pinned tools of
#      scripts/requirements-deploy.txt (SAM CLI, cargo-lambda with zig),
#   2. checks that cargo, the Rust target and AWS credentials are there,
#   3. runs `sam build` and `sam deploy --config-env ENV` with samconfig.toml.
#
# Settings (environment or make variables: `make deploy CONFIG_ENV=prod`):
#   CONFIG_ENV   samconfig.toml environment: `default` (the dev stage) or
#                `prod`; STAGE is read when CONFIG_ENV is unset (`dev` means
#                `default`)                                      [default]
#   ARCH         arm64 or x86_64: the functions' architecture for the build
#                and the deploy alike (the template's Architecture
#                parameter); unset keeps the template's arm64    [unset]
#   DEPLOY_ARGS  more `sam deploy` flags, e.g. --no-confirm-changeset
#   PYTHON       the Python 3.9+ that makes the venv             [python3]
#   STOREFRONT_DEPLOY_VENV  the venv's folder                    [.venv-deploy]
set -euo pipefail
cd "$(dirname "$0")/.."

REQUIREMENTS=scripts/requirements-deploy.txt
VENV=${STOREFRONT_DEPLOY_VENV:-.venv-deploy}
PYTHON=${PYTHON:-python3}
CONFIG_ENV=${CONFIG_ENV:-${STAGE:-default}}
if [ "$CONFIG_ENV" = dev ]; then CONFIG_ENV=default; fi
ARCH=${ARCH:-}
read -r -a extra_deploy_args <<<"${DEPLOY_ARGS:-}"

step() { printf '\n==> %s\n' "$*"; }
fail() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

case "$ARCH" in
  '' | arm64 | x86_64) ;;
  *) fail "ARCH=$ARCH is not an architecture Lambda runs; use ARCH=arm64 or ARCH=x86_64, or leave ARCH unset for the template's arm64" ;;
esac
command -v cargo >/dev/null ||
  fail "cargo is not on PATH; install Rust (https://rustup.rs), open a new shell and run make deploy again"
command -v "$PYTHON" >/dev/null ||
  fail "$PYTHON is not on PATH; install Python 3.9 or newer (or set PYTHON=/path/to/python3) and run make deploy again"

step "Python venv with the pinned tools of $REQUIREMENTS in $VENV"
# Keyed on the requirements file's hash, so changing a pin re-installs.
want=$("$PYTHON" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$REQUIREMENTS")
have=$(cat "$VENV/.requirements-deploy.sha256" 2>/dev/null || true)
if [ ! -x "$VENV/bin/python" ] || [ "$want" != "$have" ]; then
  "$PYTHON" -m venv "$VENV" ||
    fail "could not create the venv $VENV; on Debian or Ubuntu install python3-venv (apt-get install python3-venv), then run make deploy again"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS" ||
    fail "pip could not install $REQUIREMENTS from PyPI; check the network (or pip's proxy settings), then run make deploy again"
  echo "$want" >"$VENV/.requirements-deploy.sha256"
fi
# sam, cargo-lambda (cargo finds `cargo lambda` on PATH) and zig come from the venv.
export PATH="$PWD/$VENV/bin:$PATH"
# SAM CLI sends usage telemetry unless told otherwise; an operator may opt in.
export SAM_CLI_TELEMETRY=${SAM_CLI_TELEMETRY:-0}
cargo lambda --version >/dev/null 2>&1 ||
  fail "\`cargo lambda\` does not run from $VENV; delete $VENV and run make deploy again to reinstall it"
echo "$(sam --version); $(cargo lambda --version)"

step "the Rust standard library for the functions' architecture"
case "${ARCH:-arm64}" in
  arm64) target=aarch64-unknown-linux-gnu ;;
  x86_64) target=x86_64-unknown-linux-gnu ;;
esac
if command -v rustup >/dev/null; then
  if ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target" ||
      fail "rustup could not add $target; run \`rustup target add $target\` yourself (or build for this machine with ARCH=x86_64 on x86_64), then run make deploy again"
  fi
  echo "$target is installed"
else
  echo "warning: rustup is not on PATH, so $target cannot be checked; if the build says the target is missing, install its standard library for your toolchain"
fi

step "samconfig.toml environment [$CONFIG_ENV]"
# The environment's parameter_overrides, so that ARCH can be added to them:
# `sam deploy --parameter-overrides` replaces samconfig's value, it does not
# add to it.
overrides=$("$VENV/bin/python" - "$CONFIG_ENV" <<'PY'
import sys
import tomlkit  # a dependency of SAM CLI

env = sys.argv[1]
with open("samconfig.toml") as f:
    config = tomlkit.parse(f.read())
envs = [name for name, value in config.items() if isinstance(value, dict)]
if env not in envs:
    sys.exit(
        f"error: samconfig.toml has no [{env}] environment (it has: {', '.join(envs)}); "
        f"set CONFIG_ENV to one of them, or add [{env}.global.parameters] and "
        f"[{env}.deploy.parameters] to samconfig.toml"
    )
value = config[env].get("deploy", {}).get("parameters", {}).get("parameter_overrides")
if value is None:
    value = config[env].get("global", {}).get("parameters", {}).get("parameter_overrides", "")
if isinstance(value, list):
    value = " ".join(str(v) for v in value)
print(value)
PY
)
echo "parameter overrides: ${overrides:-(none)}${ARCH:+ Architecture=$ARCH}"

step "AWS credentials"
"$VENV/bin/python" - <<'PY'
import sys

import boto3

how = (
    "configure them and run make deploy again: put keys in ~/.aws/credentials "
    "(or export AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and, for temporary "
    "keys, AWS_SESSION_TOKEN), or name a profile with AWS_PROFILE (for IAM "
    "Identity Center, `aws sso login --profile NAME` first)"
)
try:
    session = boto3.Session()
    credentials = session.get_credentials()
except Exception as e:  # AWS_PROFILE names no profile, a malformed config file...
    sys.exit(f"error: the AWS configuration cannot be read: {e}; {how}")
if credentials is None:
    sys.exit(f"error: no AWS credentials found; {how}")
try:
    credentials.get_frozen_credentials()
except Exception as e:  # an expired SSO token, a broken credential_process...
    sys.exit(f"error: the AWS credentials ({credentials.method}) cannot be used: {e}; {how}")
print(f"found ({credentials.method}{', profile ' + session.profile_name if session.profile_name != 'default' else ''})")
PY

build_args=(build --config-env "$CONFIG_ENV")
deploy_args=(deploy --config-env "$CONFIG_ENV")
if [ -n "$ARCH" ]; then
  # The built template still says `Architectures: [!Ref Architecture]`, so
  # the deploy must be given the architecture the binaries were built for.
  build_args+=(--parameter-overrides "Architecture=$ARCH")
  deploy_args+=(--parameter-overrides "${overrides:+$overrides }Architecture=$ARCH")
fi

step "sam ${build_args[*]} (with Cargo.toml's deploy profile)"
# sam build always builds --release: the deploy profile's settings reach
# cargo as CARGO_PROFILE_RELEASE_* variables (scripts/deploy_profile.py).
eval "$(python scripts/deploy_profile.py)" ||
  fail "cannot read [profile.deploy] from Cargo.toml (see above)"
sam "${build_args[@]}" ||
  fail "sam build failed (see above): fix the compile error it shows; if the linker or target for ${ARCH:-arm64} is missing, install it as the message says, or on an x86_64 machine build for it with ARCH=x86_64; then run make deploy again"

step "sam ${deploy_args[*]} ${extra_deploy_args[*]:-}"
sam "${deploy_args[@]}" ${extra_deploy_args[@]+"${extra_deploy_args[@]}"} ||
  fail "sam deploy failed (see the CloudFormation events above; a failed update rolls the stack back to its last good state): fix the cause it names (a missing permission, an unverified SenderEmail, a name already taken) and run make deploy again; README's \"Rolling back\" says how to recover a stack stuck in UPDATE_ROLLBACK_FAILED"

step "deployed [$CONFIG_ENV]: the stack's outputs are above (ApiUrl, UserPoolId, UserPoolClientId, AlarmTopicArn...)"
