#!/usr/bin/env bash
# Runs every fuzz target (each func FuzzX in a _test.go under cmd and
# internal, found afresh each time) for FUZZTIME beyond its seed corpus.
#
# A target that finds a failing input fails at once: Go writes the input
# under the package's testdata/fuzz/FuzzX/. A target that fails with
# nothing but "context deadline exceeded" and writes no input hit a race in
# Go's fuzzing coordinator at the end of -fuzztime (go.dev/issue/75804,
# fixed in Go 1.27): it is run once more, and fails if it fails again.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-5s}

inputs() { if [[ -d "$1/testdata/fuzz/$2" ]]; then find "$1/testdata/fuzz/$2" -type f | sort; fi; }

status=0
while read -r file; do
  dir=$(dirname "$file")
  for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
    for try in 1 2; do
      echo "fuzz $target ./$dir for $FUZZTIME"
      before=$(inputs "$dir" "$target")
      out=$(mktemp)
      if "$GO" test -run '^$' -fuzz "^$target\$" -fuzztime "$FUZZTIME" "./$dir" 2>&1 | tee "$out"; then
        rm -f "$out"
        break
      fi
      after=$(inputs "$dir" "$target")
      if [[ $try == 1 && "$before" == "$after" ]] && grep -q "^--- FAIL: $target " "$out" &&
        [[ $(grep -v -e '^fuzz: ' -e "^--- FAIL: $target " -e '^FAIL' -e '^exit status' "$out" | sed 's/^ *//' | sort -u) == "context deadline exceeded" ]]; then
        echo "fuzz: $target ended with Go's fuzztime deadline race (go.dev/issue/75804) and no failing input: running it once more"
        rm -f "$out"
        continue
      fi
      rm -f "$out"
      echo "fuzz: $target failed"
      status=1
      break
    done
  done
done < <(grep -rl --include='*_test.go' '^func Fuzz' cmd internal | sort)
exit $status
