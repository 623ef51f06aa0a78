#!/bin/sh
# Cohort-generator speed (issue 2 targets on a 2-core machine): 5,000 patients with training arrays and no DICOM
# in <= 10 min; 200 patients with full-size DICOM in <= 5 min. Prints the generator's own timing lines.
# Usage: sh bench/cohort.sh [OUTDIR]   (default: a fresh temporary directory, removed afterwards)
set -eu
cd "$(dirname "$0")/.."
out="${1:-$(mktemp -d)}"
echo "== 200 patients, full-size DICOM for all =="
npm run -s cohort -- --patients 200 --seed 7 --site A --out "$out/c200" --dicom all 2>/dev/null
echo "== 5000 patients, arrays only =="
npm run -s cohort -- --patients 5000 --seed 1 --site A --out "$out/c5000" --dicom none 2>/dev/null
[ -n "${1:-}" ] || rm -rf "$out"
