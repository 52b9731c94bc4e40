#!/usr/bin/env bash
# Runs every chatlab command the documents show, as written, and fails if one does not exit 0:
# docs/lab.md promises that each of its commands works, and this keeps the promise checked.
#
#   check_lab_commands.sh SOURCE_DIR BUILD_DIR DOC...
#
# A command is an indented line starting with `build/release/lab/chatlab` (or `sudo ...`); a
# trailing `# comment` is dropped, and build/release becomes BUILD_DIR (the build under test).
# `sudo` commands run as they are when this runs as root (as CI does), and are skipped with a
# message otherwise; a command piped into jq is skipped when jq is not installed. Each command
# runs from SOURCE_DIR, bounded by 120 s, and is reported with its exit status and time.
set -uo pipefail
source_dir=$1
build_dir=$2
shift 2
cd "$source_dir" || exit 1

mapfile -t commands < <(grep -hE '^ +(sudo )?build/release/lab/chatlab( |$)' "$@" |
  sed -E 's/^ +//; s/ +# .*$//' | sort -u)
if [ ${#commands[@]} -eq 0 ]; then
  echo "no chatlab commands found in $*" >&2
  exit 1
fi

failed=0
for command in "${commands[@]}"; do
  run=$command
  if [[ $run == sudo\ * ]]; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "skipped (needs root): $command"
      continue
    fi
    run=${run#sudo }
  fi
  if [[ $run == *"| jq"* ]] && ! command -v jq >/dev/null; then
    echo "skipped (no jq): $command"
    continue
  fi
  run=${run//build\/release\//$build_dir/}
  started=$(date +%s%N)
  output=$(timeout 120 bash -o pipefail -c "$run" 2>&1)
  status=$?
  took=$((($(date +%s%N) - started) / 1000000))
  if [ $status -eq 0 ]; then
    echo "ok ($took ms): $command"
  else
    echo "FAILED (exit $status, $took ms): $command"
    echo "$output" | tail -n 40
    failed=1
  fi
done
exit $failed
