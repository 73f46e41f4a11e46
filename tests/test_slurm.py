"""The workflow on a real one-node Slurm, through snakemake-executor-plugin-slurm.

.ci/slurm_up.sh installs (apt) and starts slurmctld + slurmd + munge on this machine, with one
fake GPU (gres gpu:1 on /dev/null); the jobs run through sbatch with profiles/slurm-ci, the CI
twin of profiles/slurm. The daemons this module started are stopped at its end
(.ci/slurm_down.sh, by pid files), whatever the outcome.

Opt-in: runs only when ADLOC_RUN_SLURM=1 (.ci/run sets it), so a plain ``pytest`` never installs
or starts daemons, even as root. Otherwise skipped, with the reason, when ADLOC_SKIP_SLURM=1 (which
wins over ADLOC_RUN_SLURM), when not root, when Slurm is not installed and cannot be (no apt-get,
or apt fails), or when the machine has a Slurm configuration that slurm_up.sh did not write. Each Slurm job costs about 10-15 s of submission and polling, so the
workflows here are tiny.
"""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
CI = ROOT / ".ci"
PROFILE_CI = ROOT / "profiles" / "slurm-ci"
PROFILE_REAL = ROOT / "profiles" / "slurm"
SNAKEFILE = ROOT / "Snakefile"


# --------------------------------------------------------------------------------------------
# helpers


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without the variables of an enclosing Slurm job (the plugin's advice)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(extra)
    return env


def start_snakemake(args: list[str], log: Path) -> subprocess.Popen:
    """Start snakemake with this interpreter, stdout+stderr to ``log``; :func:`wait_snakemake`
    collects it."""
    with open(log, "w") as fh:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "snakemake", *args], cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
            env=_clean_env(),
        )


def wait_snakemake(proc: subprocess.Popen, log: Path, timeout: float) -> tuple[int, str]:
    """``(exit code, log text)`` of a started snakemake.

    On timeout snakemake gets SIGINT (it then cancels its Slurm jobs; on SIGTERM it would wait
    for them), then SIGKILL if it has not exited a minute later, and the test fails.
    """
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        pytest.fail(
            f"snakemake ran past {timeout:.0f} s: {' '.join(map(str, proc.args))}\n"
            f"log: {log}\n{_tail(log.read_text())}"
        )
    return rc, log.read_text()


def run_snakemake(args: list[str], log: Path, timeout: float) -> tuple[int, str]:
    """Run snakemake with this interpreter; stdout+stderr go to `log` and are returned."""
    return wait_snakemake(start_snakemake(args, log), log, timeout)


def _tail(text: str, n: int = 60) -> str:
    return "\n".join(text.splitlines()[-n:])


def sbatch_calls(output: str, rule: str) -> list[str]:
    """The plugin's `sbatch call:` lines (printed with --verbose) for one rule (its comment is
    `rule_<name>`, or `rule_<name>_wildcards_<values>` for a rule with wildcards)."""
    return [
        line
        for line in output.splitlines()
        if line.startswith("sbatch call:")
        and (f"--comment rule_{rule} " in line or f"--comment rule_{rule}_wildcards_" in line)
    ]


def slurm_profile_args(workdir: Path, snakefile: Path) -> list[str]:
    return [
        "--profile",
        str(PROFILE_CI),
        "--snakefile",
        str(snakefile),
        "--directory",
        str(workdir),
    ]


# --------------------------------------------------------------------------------------------
# the cluster


def _skip_reason() -> str | None:
    if os.environ.get("ADLOC_SKIP_SLURM") == "1":
        return "ADLOC_SKIP_SLURM=1"
    if os.environ.get("ADLOC_RUN_SLURM") != "1":
        return "opt-in: set ADLOC_RUN_SLURM=1 to install and start a local Slurm (.ci/run sets it)"
    if not sys.platform.startswith("linux"):
        return "local Slurm recipe is for Linux only"
    if os.geteuid() != 0:
        return "needs root to install and start the Slurm daemons (.ci/slurm_up.sh)"
    if shutil.which("sbatch") is None and shutil.which("apt-get") is None:
        return "Slurm is not installed and apt-get is unavailable to install it"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm is not installed"
    return None


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A running one-node Slurm; stopped at the end if this fixture started it.

    ADLOC_SLURM_STATE points slurm_up.sh at a fresh folder: it lists there the pid files of
    the daemons it starts, so slurm_down.sh stops exactly those and leaves a Slurm that was
    already up (e.g. started by .ci/run) running.
    """
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    state = tmp_path_factory.mktemp("slurm_state")
    env = _clean_env(ADLOC_SLURM_STATE=str(state))
    up = subprocess.run(
        ["bash", str(CI / "slurm_up.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    try:
        if up.returncode != 0:
            msg = f".ci/slurm_up.sh exited {up.returncode}:\n{_tail(up.stderr, 30)}"
            if up.returncode == 2:  # a slurm.conf it did not write: not ours to replace
                pytest.skip(msg)
            if shutil.which("sbatch") is None:  # apt could not install it (offline mirror, ...)
                pytest.skip("Slurm could not be installed: " + msg)
            pytest.fail(msg)
        yield
    finally:
        down = subprocess.run(
            ["bash", str(CI / "slurm_down.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if down.returncode != 0:
            pytest.fail(f".ci/slurm_down.sh exited {down.returncode}:\n{down.stderr}")


# --------------------------------------------------------------------------------------------
# the profiles themselves (no cluster needed)


@pytest.mark.parametrize("profile", [PROFILE_REAL, PROFILE_CI], ids=["slurm", "slurm-ci"])
def test_profile_is_valid_yaml_with_required_keys(profile):
    import yaml

    cfg = yaml.safe_load((profile / "config.v8+.yaml").read_text())
    assert cfg["executor"] == "slurm"
    for key in ("jobs", "retries", "latency-wait", "rerun-incomplete", "printshellcmds"):
        assert key in cfg, f"{profile.name}: missing {key}"
    res = cfg["default-resources"]
    assert isinstance(res["runtime"], int), "runtime must be minutes (an int)"
    assert isinstance(res["mem_mb"], int)
    if profile == PROFILE_CI:
        # no slurmdbd in CI: sacct never sees jobs finish and the run hangs
        assert cfg["slurm-status-command"] == "squeue"
    else:
        # a real cluster keeps the plugin's default (sacct, with failure reasons)
        assert "slurm-status-command" not in cfg


# --------------------------------------------------------------------------------------------
# throwaway workflows: GPU mapping, retries, failure report, resume

GPU_SNAKEFILE = """\
rule all:
    input: "gpu.txt", "cpu.txt", "flaky.txt"

rule gpu:
    output: "gpu.txt"
    resources: gpu=1
    shell: "echo CUDA_VISIBLE_DEVICES=${{CUDA_VISIBLE_DEVICES:-unset}} > {output}"

rule cpu:
    output: "cpu.txt"
    resources: gpu=0
    shell: "echo CUDA_VISIBLE_DEVICES=${{CUDA_VISIBLE_DEVICES:-unset}} > {output}"

# fails on its first attempt: the profile's `retries` must resubmit it
rule flaky:
    output: "flaky.txt"
    resources: att=lambda wildcards, attempt: attempt
    shell: "[ {resources.att} -ge 2 ] || exit 7; echo attempt={resources.att} > {output}"
"""


def test_gpu_rule_submitted_with_gpus_and_retried(slurm, tmp_path):
    (tmp_path / "Snakefile").write_text(GPU_SNAKEFILE)
    rc, out = run_snakemake(
        [*slurm_profile_args(tmp_path, tmp_path / "Snakefile"), "--verbose"],
        tmp_path / "snakemake.log",
        timeout=240,
    )
    assert rc == 0, _tail(out)

    gpu_calls = sbatch_calls(out, "gpu")
    cpu_calls = sbatch_calls(out, "cpu")
    assert len(gpu_calls) == 1 and len(cpu_calls) == 1, _tail(out)
    assert " --gpus=1" in gpu_calls[0]
    assert "--gpus" not in cpu_calls[0] and "--gres" not in cpu_calls[0]
    # the profile's default-resources reach sbatch: runtime in minutes, memory in MB
    assert " -t 10 " in gpu_calls[0] and " --mem 1500 " in gpu_calls[0]
    # Slurm bound the (fake) GPU to the job, and only to it
    assert (tmp_path / "gpu.txt").read_text().strip() == "CUDA_VISIBLE_DEVICES=0"
    assert (tmp_path / "cpu.txt").read_text().strip() == "CUDA_VISIBLE_DEVICES=unset"
    # retries: attempt 1 failed on Slurm, attempt 2 was submitted and succeeded
    assert len(sbatch_calls(out, "flaky")) == 2
    assert (tmp_path / "flaky.txt").read_text().strip() == "attempt=2"


CHAIN_SNAKEFILE = """\
rule all:
    input: "c.txt"

rule a:
    output: "a.txt"
    shell: "echo a > {output}"

rule b:
    input: "a.txt"
    output: "b.txt"
    shell:
        "if [ -e FAIL_B ]; then echo 'b: injected' 'failure' >&2; exit 3; fi; "
        "cat {input} > {output}; echo b >> {output}"

rule c:
    input: "b.txt"
    output: "c.txt"
    shell: "cat {input} > {output}; echo c >> {output}"
"""


def test_failure_names_slurm_log_and_rerun_resumes(slurm, tmp_path):
    (tmp_path / "Snakefile").write_text(CHAIN_SNAKEFILE)
    (tmp_path / "FAIL_B").touch()
    args = [*slurm_profile_args(tmp_path, tmp_path / "Snakefile"), "--retries", "0"]

    rc, out = run_snakemake(args, tmp_path / "run1.log", timeout=240)
    assert rc != 0, "rule b was made to fail, snakemake must exit non-zero"
    assert "Error in rule b:" in out
    m = re.search(r"log: (\S+/\.snakemake/slurm_logs/rule_b/\d+\.log)", out)
    assert m, "the error report must name the Slurm log of the failed job:\n" + _tail(out)
    slurm_log = Path(m.group(1))
    assert slurm_log.is_file(), f"{slurm_log} named in the report but missing"
    # the job's own stderr is in that log (the command line alone would not match exactly)
    assert "b: injected failure" in slurm_log.read_text().splitlines()
    assert (tmp_path / "a.txt").is_file() and not (tmp_path / "b.txt").exists()
    a_mtime = (tmp_path / "a.txt").stat().st_mtime_ns

    # fix the cause and rerun the same command: only b and c run
    (tmp_path / "FAIL_B").unlink()
    rc, out = run_snakemake(args, tmp_path / "run2.log", timeout=240)
    assert rc == 0, _tail(out)
    assert "\nrule a:" not in out and "\nrule b:" in out and "\nrule c:" in out
    assert (tmp_path / "a.txt").stat().st_mtime_ns == a_mtime
    assert (tmp_path / "c.txt").read_text() == "a\nb\nc\n"


# --------------------------------------------------------------------------------------------
# the real workflow: same tables through Slurm as with local cores

# The smallest run that still exercises every rule family: two classes (so the model-unified
# scope differs from the per-class ones), few images, one method, few bootstrap resamples.
TINY_CONFIG = """\
run_name: tiny
classes: [synth_nut, synth_carpet]
methods: [patchcore]
dataset:
  synthetic:
    image_size: 64
    counts: {train_good: 8, test_good: 4, anomalies: 4}
preprocess: {resize: 64, crop: 64}
evaluation:
  bootstrap: {n: 20, seed: 0}
analysis:
  tsne: {seed: 0, max_points_per_class: 50, perplexity: 5}
  examples_per_class: 1
"""


def _dry_run_error(tmp: Path) -> str | None:
    """None when the real workflow dry-runs with the tiny config, else the error's tail."""
    (tmp / "tiny.yaml").write_text(TINY_CONFIG)
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--snakefile", str(SNAKEFILE),
         "--directory", str(tmp), "--configfile", str(tmp / "tiny.yaml")],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=_clean_env(),
    )
    if proc.returncode != 0:
        return _tail(proc.stdout + proc.stderr, 30)
    return None


def test_real_workflow_on_slurm_matches_local_run(slurm, tmp_path):
    local, remote = tmp_path / "local", tmp_path / "slurm"
    local.mkdir()
    remote.mkdir()
    if not SNAKEFILE.is_file():
        pytest.skip(f"{SNAKEFILE} does not exist")
    error = _dry_run_error(local)
    assert error is None, "the workflow does not dry-run with the tiny config:\n" + str(error)
    (remote / "tiny.yaml").write_text(TINY_CONFIG)

    # --cores 2 = the CI profile's `cores`: the multi-threaded rules get the same thread count
    # in both runs, so floating-point reductions and hence the tables are the same bit for bit.
    # The local run goes on while the Slurm run mostly waits for sbatch and its status polls
    # (CI time: the two one after the other took ~350 s).
    local_proc = start_snakemake(
        ["--snakefile", str(SNAKEFILE), "--cores", "2", "--directory", str(local), "--configfile",
         str(local / "tiny.yaml")],
        tmp_path / "local.log",
    )
    try:
        rc, out = run_snakemake(
            [*slurm_profile_args(remote, SNAKEFILE), "--configfile", str(remote / "tiny.yaml")],
            tmp_path / "slurm.log",
            timeout=900,
        )
    finally:
        rc_local, out_local = wait_snakemake(local_proc, tmp_path / "local.log", timeout=600)
    assert rc_local == 0, "local run failed:\n" + _tail(out_local)
    assert rc == 0, "Slurm run failed:\n" + _tail(out)

    tables_l = local / "results" / "tiny" / "tables"
    tables_r = remote / "results" / "tiny" / "tables"
    names = sorted(p.relative_to(tables_l) for p in tables_l.rglob("*") if p.is_file())
    assert names, f"the local run wrote no tables under {tables_l}"
    assert names == sorted(p.relative_to(tables_r) for p in tables_r.rglob("*") if p.is_file())
    differ = [str(n) for n in names if not filecmp.cmp(tables_l / n, tables_r / n, shallow=False)]
    assert not differ, f"tables differ between the local and the Slurm run: {differ}"


def test_device_auto_asks_slurm_for_a_gpu_and_never_falls_back_to_cpu(slurm, tmp_path):
    """device: auto (the real-data presets) with no --config device=cuda: the GPU rule's sbatch
    line asks for a GPU, and the job, which sees only the CI's fake GPU, stops with the CUDA
    error instead of running on the CPU."""
    (tmp_path / "tiny.yaml").write_text(TINY_CONFIG + "device: auto\n")
    target = "results/tiny/features/efficientnet_lite0-imagenet/synth_nut.pt"
    rc, out = run_snakemake(
        [*slurm_profile_args(tmp_path, SNAKEFILE), "--configfile", str(tmp_path / "tiny.yaml"),
         "--retries", "0", "--verbose", target],
        tmp_path / "snakemake.log",
        timeout=600,
    )
    extract = sbatch_calls(out, "extract_features")
    assert len(extract) == 1, _tail(out)
    assert " --gpus=1" in extract[0]
    for rule in ("index", "preprocess_images"):  # the CPU jobs upstream of extraction
        calls = sbatch_calls(out, rule)
        assert calls and all("--gpus" not in c for c in calls), _tail(out)
    assert rc != 0, "the extract job cannot have run: the CI GPU is fake"
    log = tmp_path / "results" / "tiny" / "logs" / "extract_features" / "efficientnet_lite0-imagenet" / "synth_nut.log"
    assert "torch sees no CUDA device" in log.read_text()
    assert not (tmp_path / target).exists()
