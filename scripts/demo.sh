#!/usr/bin/env bash
# The whole pipeline on data/sample (see `samdistill demo --help`): a small teacher, embed,
# a short training of the vit_t student, evaluation before and after, pictures, a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/samdistill ] || bash scripts/build.sh
exec ./build/samdistill demo "$@"
