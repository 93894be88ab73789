# Shell helpers shared by the build scripts (sourced, not run): `source "$(dirname "$0")/lib.sh"`.

# run_with_progress TAG WHAT EXPECTED CMD [ARGS...]
# Runs CMD in the background and, while it runs, prints every ${KEA_PROGRESS_EVERY:-30} s to
# stderr `[TAG] WHAT still running: N s elapsed (expected: EXPECTED)`, so that a cold build that
# prints nothing for minutes still shows progress. Prints a start line with the expectation
# first. Returns CMD's exit status. CMD's own output goes where the caller's goes.
run_with_progress() {
  local tag=$1 what=$2 expected=$3
  shift 3
  local start=$SECONDS every=${KEA_PROGRESS_EVERY:-30} status=0 cmd_pid ticker_pid
  printf '[%s] %s (expected: %s)\n' "$tag" "$what" "$expected" >&2
  "$@" &
  cmd_pid=$!
  (
    # One-second sleeps, so that no sleep outlives the command by more than a second (a long
    # sleep left behind would hold the caller's stdout/stderr pipes open).
    local next=$((start + every))
    while sleep 1; do
      kill -0 "$cmd_pid" 2>/dev/null || exit 0
      ((SECONDS >= next)) || continue
      next=$((next + every))
      printf '[%s] %s still running: %d s elapsed (expected: %s)\n' "$tag" "$what" "$((SECONDS - start))" "$expected" >&2
    done
  ) &
  ticker_pid=$!
  wait "$cmd_pid" || status=$?
  kill "$ticker_pid" 2>/dev/null || true
  wait "$ticker_pid" 2>/dev/null || true
  printf '[%s] %s %s after %d s\n' "$tag" "$what" "$([[ $status == 0 ]] && echo done || echo "failed (exit $status)")" "$((SECONDS - start))" >&2
  return "$status"
}

# without_service_starts CMD [ARGS...]
# Runs CMD (e.g. `apt-get install nginx`) with Debian's service-start policy denying every
# action: a temporary /usr/sbin/policy-rc.d that exits 101 ("action forbidden by policy",
# Debian policy-rc.d interface, /usr/share/doc/init-system-helpers/README.policy-rc.d), so
# that package maintainer scripts neither start a newly installed nginx nor restart a user's
# running one. An existing policy-rc.d (the administrator's, or a container image's) is left
# untouched and used as it is. The temporary file is removed afterwards, also when CMD fails
# or the script is interrupted. Returns CMD's exit status.
# KEA_POLICY_RC_D overrides the path (tests only).
without_service_starts() {
  local policy=${KEA_POLICY_RC_D:-/usr/sbin/policy-rc.d} status=0
  if [[ -e "$policy" ]]; then
    "$@" || status=$?
    return "$status"
  fi
  printf '#!/bin/sh\n# temporary, from KEA scripts/setup.sh: no service starts during this install\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  # shellcheck disable=SC2064 # expand now: the path is fixed for this call
  trap "rm -f '$policy'" EXIT INT TERM
  "$@" || status=$?
  rm -f "$policy"
  trap - EXIT INT TERM
  return "$status"
}
