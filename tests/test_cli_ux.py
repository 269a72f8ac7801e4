"""The first hour of a new user (issue 15 §1-4, §7; issue 13 §5): every check runs the CLI in a
subprocess and looks at what a user sees, its output and its exit status."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import GLUE
from helpers import cli_env, one_error_line, run_cli, write_study

ROOT = Path(__file__).resolve().parents[1]
# A hub that refuses connections at once: nothing on this port answers (RFC 863 discard).
NO_HUB = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0",
          "HF_DATASETS_OFFLINE": "0"}


def error_lines(err: str) -> list[str]:
    lines = err.strip().splitlines()
    assert lines and all(line.startswith("mixsweep: error: ") for line in lines), err
    assert "Traceback" not in err and "Retrying" not in err
    return lines


# --- §1 preflight ---------------------------------------------------------------------------


def test_the_headline_command_without_the_hub_fails_at_once_naming_model_and_data(tmp_path):
    """`make sweep TASK=mrpc ARGS="data.source=glue_dir data.glue_dir=/nonexistent"` on a machine
    that cannot reach the hub: two lines (the model, the data), each with its offline fix, and
    nothing written. The timeout is the guard: before, this retried the hub for minutes."""
    results = tmp_path / "r"
    code, out, err = run_cli(tmp_path, ["sweep", "--task", "mrpc", "--results", str(results),
                                        "data.source=glue_dir", f"data.glue_dir={tmp_path / 'nonexistent'}"],
                             timeout=90, HF_HOME=str(tmp_path / "hf"), **NO_HUB)
    assert code == 2, err
    lines = error_lines(err)
    assert len(lines) == 2, lines
    model, data = lines
    assert "bert-large-uncased" in model and "unreachable" in model
    assert "model=minilm_l6" in model and "HF_HUB_OFFLINE=1" in model
    assert "nonexistent does not exist" in data and "data.glue_dir" in data
    assert out == ""  # only the error lines: no plan table
    assert not results.exists()


def test_an_offline_hub_without_a_cached_model_suggests_the_offline_model(tmp_path):
    results = tmp_path / "r"
    code, out, err = run_cli(tmp_path, ["sweep", "--results", str(results), "model=bert_large"],
                             timeout=90, HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")
    line = one_error_line(err)
    assert code == 2 and "bert-large-uncased" in line and "model=minilm_l6" in line
    assert out == "" and not results.exists()


def test_every_problem_is_reported_at_once(tmp_path):
    """A missing data folder and a device this machine lacks, in one launch."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    write_study(tmp_path, "two", seeds=1)
    code, out, err = run_cli(tmp_path, ["sweep", "--sweep", "two", "--results", str(tmp_path / "r"),
                                        f"data.glue_dir={tmp_path / 'no_glue'}", "device=cuda"])
    lines = error_lines(err)
    assert code == 2 and len(lines) == 2
    assert "no_glue does not exist" in lines[0] and "device=cuda" in lines[1] and "device=cpu" in lines[1]
    assert out == "" and not (tmp_path / "r").exists()


def test_data_describe_without_the_hub_fails_at_once(tmp_path):
    code, out, err = run_cli(tmp_path, ["data", "describe", "mrpc", "data.source=hub",
                                        f"data.hub_cache_dir={tmp_path / 'hfd'}"],
                             timeout=60, HF_HOME=str(tmp_path / "hf"), **NO_HUB)
    line = one_error_line(err)
    assert code == 2 and "nyu-mll/glue" in line and "data.source=glue_dir" in line and "Retrying" not in err


def test_a_job_failing_at_run_time_leaves_no_hydra_files(tmp_path):
    """A data folder that vanishes between preflight and the run (simulated by skipping the
    preflight) stops the sweep with its one line, and the results folder is left as it was."""
    write_study(tmp_path, "late", seeds=1)
    results = tmp_path / "r"
    prelude = "import mixsweep.sweeping.preflight as p\np.preflight = lambda *a, **k: None"
    code, _, err = run_cli(tmp_path, ["sweep", "--sweep", "late", "--results", str(results), "--no-summary",
                                      f"data.glue_dir={tmp_path / 'gone'}"], prelude=prelude)
    assert code == 2 and "gone does not exist" in one_error_line(err)
    assert not results.exists(), sorted(map(str, results.rglob("*")))

    results.mkdir()  # a folder the user made, holding another study: only this study's clutter goes
    (results / "mine.txt").write_text("keep")
    code, _, err = run_cli(tmp_path, ["sweep", "--sweep", "late", "--results", str(results), "--no-summary",
                                      f"data.glue_dir={tmp_path / 'gone'}"], prelude=prelude)
    assert code == 2
    assert sorted(p.name for p in results.iterdir()) == ["mine.txt"]


# --- §2 say what will run --------------------------------------------------------------------


def test_plan_names_study_model_data_sizes_recipe_runs_and_folder(tmp_path):
    code, out, err = run_cli(tmp_path, ["plan", "--results", str(tmp_path / "r")])
    assert code == 0, err
    head = out.splitlines()[:3]
    # sweeps/smoke.yaml: MiniLM-L6, bundled rt_polarity 512/500, lr 5e-5, 2 epochs, batch 16, 3 cells x 3 seeds
    assert head[0].startswith("study 'smoke' (the default without a task")
    assert "9 runs (3 cells × 3 seeds) on rt_polarity" in head[0] and f"{tmp_path / 'r' / 'smoke'}" in head[0]
    assert head[1] == "  model: minilm_l6 · data: bundled · train/dev: 512/500"
    assert head[2] == "  recipe: bertadam lr 5e-05, 2 epochs, batch 16, warmup 0.1, clipping 1.0"


def test_plan_shows_the_cell_names_cells_takes_and_their_labels_once(tmp_path):
    code, out, err = run_cli(tmp_path, ["plan", "--sweep", "stabilizers_smoke", "--results", str(tmp_path / "r")])
    assert code == 0, err
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("  rt_polarity ")}
    # the 11 cell names of sweeps/stabilizers_smoke.yaml, each one row
    assert sorted(rows) == sorted(["devlin", "devlin@adamw_hf", "reinit_3", "llrd", "mosbach", "recadam",
                                   "child_tuning_f", "noisytune", "r3f", "mixout_0.9", "wdecay_0.01"])
    assert "cell (CELLS=)" in out and "  label" in out
    # 2 seeds, none done; the label (regularizer + what differs between cells) after the counts
    # (the recipe places the decay after the update, as Mosbach et al.'s mAdamW: issue 32 item 2)
    assert rows["mosbach"].split()[2:7] == ["2", "0", "0", "2", "dropout(0.1)+wdecay(0,0.01)[post_update]"]
    # the smoke's Mosbach cell runs 10 of its recipe's 20 epochs (sweeps/stabilizers_smoke.yaml), and
    # evaluates at step 0 and each epoch's end as their run_finetuning.py
    assert rows["mosbach"].rstrip().endswith("[optimizer=adamw_hf, optimizer.lr=2e-05, train.epochs=10, "
                                             "train.eval_at_epoch_end=true, train.eval_at_start=true]")


def test_extra_args_say_the_runs_join_the_studys_view_and_report(tmp_path):
    code, out, err = run_cli(tmp_path, ["plan", "--results", str(tmp_path / "r"), "model=tiny"])
    assert code == 0, err
    assert out.splitlines()[3] == ("  extra ARGS: model=tiny -- these runs join study 'smoke' (its view, "
                                   "`mixsweep table` and report) beside any runs without them, as separate cells")
    code, out, err = run_cli(tmp_path, ["plan", "--results", str(tmp_path / "r")])
    assert code == 0 and "extra ARGS" not in out


def test_a_task_means_table1_in_the_cli_as_in_make(tmp_path):
    code, out, err = run_cli(tmp_path, ["plan", "--task", "mrpc", "--results", str(tmp_path / "r")])
    assert code == 0, err
    # Table 1: 11 rows x 20 seeds of BERT-large with the paper's recipe (lr 2e-5, 3 epochs, batch 32)
    assert out.startswith("study 'table1' (the default with a task")
    assert "220 runs (11 cells × 20 seeds) on mrpc" in out.splitlines()[0]
    assert "model: bert-large-uncased" in out and "batch 32" in out and "3 epochs" in out

    make = subprocess.run(["make", "-n", "plan", "TASK=mrpc"], cwd=ROOT, capture_output=True, text=True)
    line = next(x for x in make.stdout.splitlines() if "mixsweep plan" in x)
    assert "--task mrpc" in line and "--sweep" not in line  # make leaves the choice to the CLI's rule
    make = subprocess.run(["make", "-n", "report", "TASK=mrpc"], cwd=ROOT, capture_output=True, text=True)
    assert "--sweep table1" in make.stdout


def test_a_task_outside_the_study_is_an_error(tmp_path):
    code, out, err = run_cli(tmp_path, ["plan", "--task", "rt_polarity"])
    line = one_error_line(err)
    assert code == 2 and "not in study 'table1'" in line and "rte, mrpc, cola, stsb" in line and "smoke" in line


# --- §3 one-line errors ----------------------------------------------------------------------


def test_a_yaml_error_in_a_study_file_gives_file_line_col(tmp_path):
    (tmp_path / "sweeps").mkdir()
    bad = tmp_path / "sweeps" / "broken.yaml"
    bad.write_text("sweep: broken\nhydra:\n  sweeper:\n    params: {seed: range(0,2)\n    cells: [a\n")
    code, _, err = run_cli(tmp_path, ["plan", "--sweep", "broken"])
    line = one_error_line(err)
    assert code == 2 and f"{bad}:5:10: YAML error" in line  # the ':' after `cells` breaks the open mapping


def test_results_that_is_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    code, _, err = run_cli(tmp_path, ["plan", "--results", str(tmp_path / "afile")])
    assert code == 2 and "RESULTS=" in one_error_line(err)


def test_a_closed_pipe_ends_quietly(tmp_path):
    env = cli_env(tmp_path)
    proc = subprocess.run(f"'{sys.executable}' -m mixsweep.cli plan 2>'{tmp_path}/err' | true; "
                          "echo ${PIPESTATUS[0]}", shell=True, executable="/bin/bash", env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "141"
    assert (tmp_path / "err").read_text() == ""


@pytest.mark.parametrize(("argv", "expected"), [
    (["plan", "regularizer=mixot"], "choose one of bitfit, child_tuning, cwgnc, devlin, dps, dropout, hype, llrd, lora, "
                                   "mixout, mixout_wdecay, noisytune, none, r3f, rdrop, recadam, reinit, smart, spd, "
                                   "wdecay"),
    (["rerun", "deadbeef", "--results", "{tmp}"], "ls {tmp}/runs/"),
    (["report", "--sweep", "smok", "--results", "{tmp}"], "unknown sweep 'smok': choose one of"),
    (["table", "--results", "{tmp}"], "make sweep SWEEP=smoke RESULTS={tmp}"),
])
def test_messages_point_the_right_way(tmp_path, argv, expected):
    argv = [a.format(tmp=tmp_path) for a in argv]
    code, _, err = run_cli(tmp_path, argv)
    assert code == 2 and expected.format(tmp=tmp_path) in one_error_line(err)


def test_version():
    version = re.search(r'^version = "(.+)"$', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    proc = subprocess.run([sys.executable, "-m", "mixsweep.cli", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == f"mixsweep {version}"


def test_python_dash_m_mixsweep_is_the_mixsweep_command(tmp_path):
    """`python -m mixsweep` where the script is not on PATH: the same version, help and one-line errors."""
    def run(*argv):
        return subprocess.run([sys.executable, "-m", "mixsweep", *argv], capture_output=True, text=True,
                              env=cli_env(tmp_path), timeout=120)

    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("mixsweep ")
    assert "usage: mixsweep plan" in run("plan", "--help").stdout
    bad = run("plan", "--sweep", "no_such_study")
    assert bad.returncode == 2 and "unknown sweep 'no_such_study'" in one_error_line(bad.stderr)


def test_an_install_without_its_config_directory_says_how_to_fix_it(tmp_path):
    """A wheel install (or a moved checkout) has no conf/: one line naming the path and the fix."""
    proc = subprocess.run([sys.executable, "-m", "mixsweep", "plan", "--sweep", "smoke"], capture_output=True,
                          text=True, env=cli_env(tmp_path, MIXSWEEP_ROOT=str(tmp_path / "elsewhere")), timeout=120)
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert f"no config directory at {tmp_path / 'elsewhere' / 'conf'}" in line and "MIXSWEEP_ROOT" in line
    assert not (tmp_path / "results").exists()


def test_every_argument_has_help():
    import argparse

    from mixsweep.cli import build_parser

    missing = []

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    walk(sub, f"{name} {sub_name}")
            elif not isinstance(action, argparse._HelpAction) and not action.help:
                missing.append(f"{name} {action.dest}")

    walk(build_parser(), "mixsweep")
    assert not missing


def test_sweep_help_shows_no_rest_markup():
    proc = subprocess.run([sys.executable, "-m", "mixsweep.cli", "sweep", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "`--sweep`/`SWEEP=` names it" in proc.stdout.replace("\n", " ")
    assert "``" not in proc.stdout


# --- §7 Hydra introspection, make help ---------------------------------------------------------


def test_hydra_introspection_passes_through(tmp_path):
    code, out, err = run_cli(tmp_path, ["plan", "--cfg", "job"])
    assert code == 0, err
    # the config (the declared settings first, Run's first field is experiment, then the groups), no plan
    assert out.startswith("experiment: finetune\n") and "\ntask:" in out and "regularizer:" in out and "runs in" not in out
    code, out, err = run_cli(tmp_path, ["sweep", "--info", "searchpath", "--results", str(tmp_path / "r")])
    assert code == 0 and "Config search path" in out and not (tmp_path / "r").exists()


def test_make_help_has_no_colour_codes_when_piped():
    proc = subprocess.run(["make", "help"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0 and "sweep" in proc.stdout and "\033" not in proc.stdout


# --- issue 13 §5: one override syntax ------------------------------------------------------------


def test_data_describe_takes_the_sweeps_override_syntax(tmp_path):
    short = run_cli(tmp_path, ["data", "describe", "rte", "source=glue_dir", f"glue_dir={GLUE}", "train_size=8"])
    long = run_cli(tmp_path, ["data", "describe", "rte", "data.source=glue_dir", f"data.glue_dir={GLUE}",
                              "data.train_size=8"])
    assert short[0] == long[0] == 0, long[2]
    assert json.loads(long[1]) == json.loads(short[1])
    assert json.loads(long[1])["splits"]["train"]["size"] == 8


# --- §4 progress, and a real sweep's output ------------------------------------------------------


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """One small sweep (MiniLM on the RTE fixture, 2 cells, 4 steps) with progress lines every step."""
    root = tmp_path_factory.mktemp("swept")
    write_study(root, "ux", seeds=1, epochs=2)
    results = root / "results"
    code, out, err = run_cli(root, ["sweep", "--sweep", "ux", "--results", str(results), "model=minilm_l6"],
                             timeout=600, MIXSWEEP_PROGRESS_INTERVAL="0")
    assert code == 0, err
    return root, results, out, err


@pytest.mark.slow
def test_a_sweep_off_a_terminal_prints_progress_and_what_runs_first(swept):
    _, results, out, err = swept
    lines = out.splitlines()
    assert lines[0].startswith("study 'ux': 2 runs (2 cells × 1 seed) on rte")
    assert lines[1] == f"  model: minilm_l6 · data: glue_dir {GLUE} · train/dev: 16/8"  # the fixture's sizes
    # 16 rows / batch 8 x 2 epochs = 4 steps; a line per step but the last (interval 0)
    steps = [m.group(1) for m in re.finditer(r"\] step (\d)/4 · loss \d+\.\d{4} · \d+s elapsed · ETA \d+s", out)]
    assert steps == ["1", "2", "3"] * 2
    assert "LOAD REPORT" not in out + err and "Retrying" not in out + err


@pytest.mark.slow
def test_the_closing_table_counts_failures_as_the_report_does(swept):
    _, _, out, _ = swept
    header = next(line for line in out.splitlines() if line.startswith("task "))
    assert "#fail lee2020" in header and "#fail majority" in header
    assert not re.search(r"\d [LM]\s", out)


@pytest.mark.slow
def test_no_empty_per_job_log_files(swept):
    _, results, _, _ = swept
    logs = list(results.rglob("*.log"))
    assert not logs, logs


@pytest.mark.slow
def test_rerun_shows_progress_and_debug_shows_the_load_report(swept):
    root, results, _, _ = swept
    rid = next(results.glob("runs/*/result.json")).parent.name
    code, out, err = run_cli(root, ["--debug", "rerun", rid, "--results", str(results)], timeout=300,
                             MIXSWEEP_PROGRESS_INTERVAL="0")
    assert code == 0, err
    assert out.startswith(f"rerunning {rid}") and "step 1/4 · loss" in out and "metrics match exactly" in out
    assert "LOAD REPORT" in out + err  # hidden from the sweep above, shown when debugging
