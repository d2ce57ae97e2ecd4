#!/usr/bin/env bash
# Runs a command (unit tests, or e2e tests whose leveed and module are
# sanitized) with every sanitizer report written to a file under <dir>, and
# fails when one was written, whatever the command's own result: a report
# from a process that the tests merely stop (leveed at teardown, an nginx
# worker) still fails the run.
#
# usage: run_sanitized.sh <dir> <command> [args...]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=$1
shift
rm -rf "$dir"
mkdir -p "$dir"
# nginx workers run as another user: they must be able to write their reports.
chmod 1777 "$dir"
log="log_path=$dir/report"
export ASAN_OPTIONS="$log:detect_leaks=1:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
export LSAN_OPTIONS="suppressions=$here/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="$log:print_stacktrace=1:halt_on_error=1"
export TSAN_OPTIONS="$log:halt_on_error=0:second_deadlock_stack=1:suppressions=$here/tsan.supp"

"$@"
rc=$?

shopt -s nullglob
reports=("$dir"/report.*)
if [ ${#reports[@]} -gt 0 ]; then
    for r in "${reports[@]}"; do
        echo "=== sanitizer report $r"
        head -n 80 "$r"
    done
    echo "run_sanitized: ${#reports[@]} sanitizer report(s) from: $*" >&2
    exit 1
fi
exit $rc
