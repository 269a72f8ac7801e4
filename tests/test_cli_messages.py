"""Smaller messages of issue 36 §12 through the CLI: every analysis and rerun command describes itself
in --help, and a model folder that cannot be loaded says transformers' cause."""

from __future__ import annotations

import pytest

from helpers import run_cli, sweep_argv, write_study
from test_hostile_input import one_error_line


@pytest.mark.parametrize(("command", "words"), [
    ("table", "paper's table"), ("plots", "figures"), ("rerun", "Re-execute one stored run"),
    ("report", "report.md")])
def test_help_describes_the_command(tmp_path, command, words):
    code, out, err = run_cli(tmp_path, [command, "--help"])
    assert code == 0, err
    description = out.split("\n\n")[1]  # usage, then the description, then the options
    assert not description.startswith(("positional arguments", "options")), out
    assert words in " ".join(description.split()), description


@pytest.mark.parametrize(("config", "cause"), [
    ("{not json", "is not a valid JSON file (Expecting property name"),
    ("[]", "must be a mapping, not list"),
])
def test_a_model_folder_with_a_bad_config_json_says_the_cause(tmp_path, config, cause):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(config)
    write_study(tmp_path, "bad", {"dropout_0.1": ["regularizer=dropout"]}, seeds=1)
    code, out, err = run_cli(tmp_path, [*sweep_argv(tmp_path / "r", "bad"), f"model.name_or_path={model}"],
                             timeout=300)
    line = one_error_line(code, err)
    assert line.startswith(f"mixsweep: error: cannot load model '{model}': ") and cause in line, line
    assert "fix that folder" in line
