#!/usr/bin/env bash
# Packaging check: a non-editable `pip install .` into a fresh venv validates a config and runs the
# embedded workflow (generated data, tiny size) with the INSTALLED adloc, not this checkout's src/.
#
#   .ci/package_check.sh [--reuse-venv | --deps-from VENV0] [VENV]   (default VENV: /tmp/adloc-pkg-venv)
#
# VENV is recreated from nothing; --reuse-venv keeps an existing VENV's requirements (a quick
# rerun by hand) but still reinstalls adloc itself, non-editable. --deps-from VENV0 (CI: the venv
# it has just installed from requirements.txt, from nothing) gives the fresh VENV VENV0's
# packages through a .pth line instead of installing the same pinned requirements a second time
# (about 2 minutes of CI): pip still resolves adloc's dependencies, finds them there, and installs
# adloc itself non-editable into VENV. VENV0's own editable adloc is invisible from VENV (a .pth
# line adds a folder to sys.path without running that folder's .pth files, which is where the
# editable hook lives), and the check below asserts adloc is imported from VENV.
#
# How "the installed adloc" is made sure of: the rules (rules/common.smk) and scripts
# (scripts/_common.py) put the checkout's src/ first on sys.path when there is one, so that a
# checkout always runs its own library. This check therefore runs a copy of the workflow files
# (Snakefile, rules, scripts, envs, report, config.yaml) WITHOUT src/, from a folder outside the
# repository, with PYTHONPATH unset; it also asserts adloc's location and that the packaged config
# schema (adloc/schema/config.schema.yaml, read by the workflow's validate) comes from the venv.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
reuse=0
deps_from=""
if [ "${1:-}" = "--reuse-venv" ]; then reuse=1; shift; fi
if [ "${1:-}" = "--deps-from" ]; then deps_from=$(cd "$2" && pwd); shift 2; fi
venv=${1:-/tmp/adloc-pkg-venv}
work=$(mktemp -d /tmp/adloc-pkg-XXXXXX)
trap 'rm -rf "$work"' EXIT
unset PYTHONPATH
start=$(date +%s)
step() { echo "package_check: $1 ($(( $(date +%s) - start )) s)"; }

# 1. Fresh venv; the pinned requirements, then adloc itself, NOT editable. pip builds in the
#    source folder, so build from a copy of what the package is made of (keeps the checkout clean).
pip_log="$work/pip.log"
if [ "$reuse" -eq 1 ] && [ -x "$venv/bin/python" ]; then
  "$venv/bin/pip" uninstall -q -y adloc >"$pip_log" 2>&1 || true
  step "reusing $venv"
elif [ -n "$deps_from" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  site_new=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  site_old=$("$deps_from/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$site_old" >"$site_new/_adloc_ci_deps.pth"
  step "requirements taken from $deps_from (installed there from nothing)"
else
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$repo/requirements.txt" >"$pip_log" 2>&1 || { tail -n 40 "$pip_log"; exit 1; }
  step "requirements installed"
fi
mkdir "$work/pkg"
cp -r "$repo/pyproject.toml" "$repo/README.md" "$repo/src" "$work/pkg/"
find "$work/pkg" -name __pycache__ -prune -exec rm -rf {} +
rm -rf "$work/pkg/src/"*.egg-info
"$venv/bin/pip" install -q "$work/pkg" >"$pip_log" 2>&1 || { tail -n 40 "$pip_log"; exit 1; }
rm -rf "$work/pkg"
"$venv/bin/pip" check >"$pip_log" 2>&1 || { cat "$pip_log"; exit 1; }
step "adloc installed (non-editable)"

# 2. From outside the repository: the installed package, its schema, a config validated.
mkdir "$work/run"
cd "$work/run"
"$venv/bin/python" - "$venv" "$repo" <<'EOF'
import sys
from pathlib import Path

import adloc
from adloc.config import load_config, schema_path
from adloc.errors import ConfigError

venv, repo = (Path(p).resolve() for p in sys.argv[1:3])
where = Path(adloc.__file__).resolve()
assert venv in where.parents and repo not in where.parents, f"adloc imported from {where}"
assert venv in schema_path().parents, f"schema read from {schema_path()}"
cfg = load_config(repo / "config.yaml")
assert cfg["classes"] and cfg["patchcore"]["coreset_ratio"] > 0, cfg
try:
    load_config(repo / "config.yaml", {"patchcore": {"coreset_ratoi": 0.1}})
except ConfigError as exc:
    assert "coreset_ratoi" in str(exc), exc
else:
    raise AssertionError("a misspelt key was accepted")
print(f"package_check: adloc {adloc.__version__} from {where.parent}; config validated")
EOF
step "config validated"

# 3. The embedded workflow at tiny size (two classes, PatchCore only: fewer jobs, same imports),
#    from a copy of the workflow files without src/.
mkdir "$work/workflow"
cp -r "$repo/Snakefile" "$repo/config.yaml" "$repo/rules" "$repo/scripts" "$repo/envs" \
  "$repo/report" "$work/workflow/"
find "$work/workflow" -name __pycache__ -prune -exec rm -rf {} +
cat >"$work/run/tiny.yaml" <<'EOF'
run_name: tiny
dataset:
  root: data/tiny
  generate: true
  synthetic: {seed: 0, image_size: 64, counts: {train_good: 10, test_good: 4, anomalies: 8}}
classes: [synth_nut, synth_carpet]
methods: [patchcore]
preprocess: {resize: 64, crop: 64}
features: {batch_size: 32}
evaluation: {bootstrap: {n: 50, seed: 0}}
analysis: {tsne: {max_points_per_class: 60, perplexity: 5}, examples_per_class: 2}
EOF
PATH="$venv/bin:$PATH" "$venv/bin/python" -m snakemake --snakefile "$work/workflow/Snakefile" \
  --directory "$work/run" --configfile "$work/run/tiny.yaml" --cores 2 --quiet rules \
  >"$work/snakemake.log" 2>&1 || { tail -n 60 "$work/snakemake.log"; exit 1; }
for f in summary.md tables/metrics.csv tables/gap.csv figures/gap.png; do
  test -s "$work/run/results/tiny/$f" || { echo "package_check: missing results/tiny/$f"; exit 1; }
done
grep -q "synth_carpet" "$work/run/results/tiny/tables/metrics.csv"
step "embedded workflow ran with the installed adloc; finished"
