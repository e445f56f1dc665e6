# shellcheck shell=bash
# Shared by the launch scripts (sourced, not run).

# Runs a command, or prints it (shell-quoted, ready to paste) when dry_run=1.
run() {
  if [[ ${dry_run:-0} -eq 1 ]]; then
    printf '%q ' "$@"
    printf '\n'
  else
    "$@"
  fi
}
