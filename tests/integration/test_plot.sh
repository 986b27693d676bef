#!/usr/bin/env bash
# tlsweep plot and results/compare.ipynb on sweep files made here: a real smoke sweep (every
# figure written, each drawn array compared with the HDF5 file by check_plot.py, the notebook
# executed with nbconvert), a sweep read while it runs, one with failed trials, and the
# errors: missing/corrupt file, bad --format, no Python, no matplotlib.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
repo=$PWD
tlsweep=${TLSWEEP:-$repo/bin/tlsweep}
py=${PYTHON:-/usr/bin/python3}
mpirun="mpirun --allow-run-as-root --oversubscribe"
export TERM=dumb OMP_NUM_THREADS=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# a real (trained) smoke sweep on a generated dataset
$tlsweep synth-flowers "$tmp/data" --classes 8 --per-class 24 --width 64 --height 56 >/dev/null
sed -e "s|root: data/smoke|root: $tmp/data|" -e "s|^output: .*|output: $tmp/real.h5|" \
  sweeps/smoke.yaml >"$tmp/real.yaml"
check "real smoke sweep for the figures (exit 0)" \
  timeout 120 $mpirun -np 3 $tlsweep run -q "$tmp/real.yaml"

# every figure in every format, from another directory (the module is found beside bin/)
(cd / && $tlsweep plot "$tmp/real.h5" -o "$tmp/fig" --format png,svg,pdf --data-json "$tmp/drawn.json") \
  >"$tmp/plot.log" 2>&1
check "plot: exit 0 from another directory" test $? -eq 0
check "plot: says where the figures are" grep -q "15 figures in $tmp/fig/" "$tmp/plot.log"
sizes_ok() { # every figure exists in every format, is a real file of that format, not tiny
  local name fmt f
  for name in curves fe_vs_ft heatmap lr throughput; do
    for fmt in png svg pdf; do
      f="$tmp/fig/$name.$fmt"
      [ -f "$f" ] || { echo "missing $f"; return 1; }
      [ "$(stat -c %s "$f")" -ge 15000 ] || { echo "$f: $(stat -c %s "$f") bytes"; return 1; }
    done
    head -c 8 "$tmp/fig/$name.png" | grep -q PNG || { echo "$name.png is not a PNG"; return 1; }
    head -c 5 "$tmp/fig/$name.pdf" | grep -q '%PDF' || { echo "$name.pdf is not a PDF"; return 1; }
    grep -q '<svg' "$tmp/fig/$name.svg" || { echo "$name.svg is not an SVG"; return 1; }
  done
}
check "plot: 5 figures x png, svg, pdf, each a sane size" sizes_ok
check "plot: the arrays drawn are the file's (curves, bars, heatmap, every lr, throughput)" \
  $py tests/integration/check_plot.py "$tmp/real.h5" "$tmp/drawn.json"
check "plot: python3 -m results.plot from the repository root, default folder" \
  bash -c "$py -m results.plot '$tmp/real.h5' >/dev/null && test -s '$tmp/real-figures/heatmap.png'"

# the check itself notices a wrong number
sed -e '0,/"val_acc": \[/s//"val_acc": [0.987, /' "$tmp/drawn.json" >"$tmp/wrong.json"
check "check_plot.py fails on a changed value" \
  bash -c "! $py tests/integration/check_plot.py '$tmp/real.h5' '$tmp/wrong.json' >/dev/null"

# a file of the previous results schema (no /curves data_wait_s) is drawn without the wait
$py tests/integration/make_schema1.py "$tmp/real.h5" "$tmp/old.h5"
check "plot: a file of results schema 1 (no data_wait_s) draws, the same numbers" \
  bash -c "$tlsweep plot '$tmp/old.h5' -o '$tmp/oldfig' --data-json '$tmp/old.json' >/dev/null &&
           $py tests/integration/check_plot.py '$tmp/old.h5' '$tmp/old.json'"

# the notebook, executed against that file; an error in any cell fails nbconvert
TLSWEEP_RESULTS="$tmp/real.h5" timeout 180 $py -m nbconvert --to notebook --execute \
  results/compare.ipynb --output-dir "$tmp/nb" >"$tmp/nb.log" 2>&1
nb_rc=$?
check "notebook: executes without an error (nbconvert --execute)" test $nb_rc -eq 0
[ $nb_rc -eq 0 ] || tail -20 "$tmp/nb.log"
notebook_outputs() {
  $py - "$tmp/nb/compare.ipynb" <<'EOF'
import json, sys
nb = json.load(open(sys.argv[1]))
outs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
text = "".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", "")) for o in outs)
images = sum("image/png" in o.get("data", {}) for o in outs)
need = ["4 trials, 12 epochs recorded", "best.safetensors", "loaded weights on", "recorded at epoch"]
missing = [n for n in need if n not in text]
if images < 5 or missing:
    sys.exit(f"{images} figures inline, missing outputs: {missing}")
EOF
}
check "notebook: 5 figures inline, the tables, weights loaded, their val loss and accuracy reproduced" notebook_outputs

# a sweep read while it runs: partial curves drawn, running trials marked
timeout 60 $mpirun -np 3 $tlsweep run --simulate --sim-seconds 1.5 -q -o "$tmp/live.h5" \
  sweeps/smoke.yaml >"$tmp/live.log" 2>&1 &
run=$!
$py tests/integration/wait_rows.py "$tmp/live.h5" 2 30 >/dev/null
$tlsweep plot "$tmp/live.h5" -o "$tmp/live-fig" --data-json "$tmp/live.json" >"$tmp/live-plot.log" 2>&1
check "running sweep: plot exits 0" test $? -eq 0
check "running sweep: the partial arrays drawn are the file's" \
  $py tests/integration/check_plot.py "$tmp/live.h5" "$tmp/live.json" --running
check "running sweep: drawn before the end (a trial with fewer than 3 epochs, not done)" \
  $py -c "import json,sys; d=json.load(open('$tmp/live.json'))['curves']; sys.exit(not any(len(v['epoch'])<3 and v['status']!='done' for v in d.values()))"
wait $run
check "running sweep: the sweep itself finished (exit 0)" test $? -eq 0

# failed trials are drawn and marked, not hidden; an extra grid axis (train.seed) gives facets
printf 'not a weights file' >"$tmp/broken.pth"
sed -e "s|^output: .*|output: $tmp/fail.h5|" -e "s|^retries: 1|retries: 0\nbackbones:\n  vgg11_bn: {weights: $tmp/broken.pth}|" \
  -e "s|^  schedule: \(.*\)|  schedule: \1\n  train.seed: [0, 1]|" sweeps/smoke.yaml >"$tmp/fail.yaml"
timeout 60 $mpirun -np 3 $tlsweep run --simulate --sim-seconds 0.02 -q "$tmp/fail.yaml" >/dev/null 2>&1
$tlsweep plot "$tmp/fail.h5" -o "$tmp/fail-fig" --data-json "$tmp/fail.json" >/dev/null 2>&1
check "failed trials: plot exits 0" test $? -eq 0
check "failed trials: drawn arrays match the file" \
  $py tests/integration/check_plot.py "$tmp/fail.h5" "$tmp/fail.json"
check "failed trials: the vgg11_bn trials are in every figure, marked failed" \
  $py -c "
import json, sys
d = json.load(open('$tmp/fail.json'))
bad = [n for kind in ('curves', 'fe_vs_ft', 'throughput') for n, v in d[kind].items()
       if n.startswith('vgg11_bn') and v['status'] != 'failed']
n = sum(1 for v in d['curves'] if v.startswith('vgg11_bn'))
sys.exit(bad or n != 4)"
check "extra grid axis: one heatmap facet per seed, every trial in the curves" \
  $py -c "
import json, sys
d = json.load(open('$tmp/fail.json'))
sys.exit(sorted(d['heatmap']) != ['train.seed=0', 'train.seed=1'] or len(d['curves']) != 8)"

# errors name the file
printf 'not hdf5' >"$tmp/corrupt.h5"
head -c 3000 "$tmp/real.h5" >"$tmp/truncated.h5"
expect_fail "missing file: exit 2, named" 2 "$tmp/none.h5: no such file" $tlsweep plot "$tmp/none.h5"
expect_fail "corrupt file: exit 2, named" 2 "$tmp/corrupt.h5: not a readable HDF5 file" \
  $tlsweep plot "$tmp/corrupt.h5"
expect_fail "truncated file: exit 2, named" 2 "$tmp/truncated.h5: " $tlsweep plot "$tmp/truncated.h5"
expect_fail "bad --format: exit 2" 2 "format: gif" $tlsweep plot "$tmp/real.h5" --format gif
expect_fail "no Python: exit 3, says what to install" 3 "cannot run Python '/nonexistent/python3'.*python3-matplotlib" \
  env PYTHON=/nonexistent/python3 $tlsweep plot "$tmp/real.h5"
mkdir -p "$tmp/nompl/matplotlib"
echo 'raise ModuleNotFoundError("No module named matplotlib", name="matplotlib")' \
  >"$tmp/nompl/matplotlib/__init__.py"
printf '#!/bin/sh\nPYTHONPATH=%s exec %s "$@"\n' "$tmp/nompl" "$py" >"$tmp/python-nompl"
chmod +x "$tmp/python-nompl"
expect_fail "no matplotlib: exit 3, names the package" 3 "cannot import matplotlib: install python3-matplotlib" \
  env PYTHON="$tmp/python-nompl" $tlsweep plot "$tmp/real.h5"
# one line each (no traceback) and exit 2 for an output place that cannot be written
: >"$tmp/a-file"
expect_fail "-o under a file: exit 2, one line" 2 "^tlsweep plot: $tmp/a-file/figs: cannot write: Not a directory$" \
  $tlsweep plot "$tmp/real.h5" -o "$tmp/a-file/figs"
expect_fail "-o naming a file: exit 2, one line" 2 "^tlsweep plot: $tmp/a-file: a file, not a folder for the figures$" \
  $tlsweep plot "$tmp/real.h5" -o "$tmp/a-file"
check "  neither printed a Python traceback" \
  bash -c "! $tlsweep plot '$tmp/real.h5' -o '$tmp/a-file/figs' 2>&1 | grep -q Traceback"
printf '#!/bin/sh\nexit 7\n' >"$tmp/python-fails"
chmod +x "$tmp/python-fails"
expect_fail "a Python that fails silently: exit 3, said" 3 "python-fails .*plot.py failed with exit status 7" \
  env PYTHON="$tmp/python-fails" $tlsweep plot "$tmp/real.h5"
check "plot --help" bash -c "$tlsweep plot --help | grep -q 'usage: tlsweep plot FILE.h5'"
check "the command table lists plot" bash -c "$tlsweep --help | grep -qE '^  plot '"

finish
