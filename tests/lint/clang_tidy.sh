#!/usr/bin/env bash
# clang_tidy.sh BUILD_DIR: runs clang-tidy (the root .clang-tidy) on every
# .cc of our libraries (net, smtp, auth, obs, proxy, cmd) with BUILD_DIR's
# compile_commands.json (a unity build's as well), two
# files at a time; fails on any warning. The flags are g++'s, so clang is
# told to ignore the warning options it does not know.
set -euo pipefail
cd "$(dirname "$0")/../.."
build_dir=${1:?usage: tests/lint/clang_tidy.sh BUILD_DIR}
[ -f "$build_dir/compile_commands.json" ] || {
  echo "clang_tidy.sh: no $build_dir/compile_commands.json (build first)" >&2
  exit 2
}
command -v clang-tidy >/dev/null || {
  echo "clang_tidy.sh: clang-tidy is not installed (Debian package clang-tidy)" >&2
  exit 2
}
sources() { find net smtp auth obs proxy cmd -name "*.cc" | sort; }
log=$(mktemp)
db=$(mktemp -d)
trap 'rm -rf "$log" "$db"' EXIT
# A unity build's database names its unity sources (Unity/unity_N_cxx.cxx),
# not our files: each file they include gets an entry of its own, with the
# command its unity source was compiled with.
/usr/bin/python3 - "$build_dir/compile_commands.json" "$db/compile_commands.json" <<'PY'
import json, re, sys

entries = []
for entry in json.load(open(sys.argv[1])):
    unity = entry["file"]
    if "/Unity/unity_" not in unity:
        entries.append(entry)
        continue
    with open(unity) as f:
        for source in re.findall(r'^#include "(.+)"$', f.read(), re.M):
            entries.append(dict(entry, file=source, command=entry["command"].replace(unity, source)))
with open(sys.argv[2], "w") as f:
    json.dump(entries, f, indent=1)
PY
status=0
sources |
  xargs -P 2 -n 1 clang-tidy --quiet -p "$db" --extra-arg=-Wno-unknown-warning-option \
    >"$log" 2>&1 || status=$?
# clang-tidy prints "N warnings generated." for the suppressed ones in
# system headers; show only what concerns our files.
grep -v -E '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$' "$log" || true
if [ "$status" -ne 0 ]; then
  echo "clang_tidy.sh: clang-tidy found problems (above)" >&2
  exit 1
fi
echo "clang_tidy.sh: $(sources | wc -l) files clean"
