"""The analysis design block (issue 31): parsed strictly into frozen dataclasses, found from the study
file, applied by the report and the table views; the sweeper ignores it (same run ids, same plan)."""

from __future__ import annotations

import pytest
import yaml

from helpers import one_error_line, run_cli, unpadded, write_study
from mixsweep.analysis.design import (
    Compared,
    Contrast,
    EarlyDiscarding,
    check_cells,
    parse_design,
    read_design,
)
from mixsweep.analysis.design_report import comparisons, contrast_table, mde_lines, sensitivity_table
from mixsweep.analysis.load import load_results
from mixsweep.analysis.report import build_report
from mixsweep.analysis.stats import fisher_one_sided, holm
from mixsweep.analysis.synthetic import write_records
from mixsweep.cli import main
from mixsweep.errors import UserError
from mixsweep.records import RunRecord

EXAMPLE = """
design:
  failure: majority
  thresholds: [0, 1, 2, 4]
  never_learned_band: 0.05
  primary: {test: fisher, correction: holm}
  secondary: mannwhitney
  alpha: 0.05
  compare:
    devlin: {baseline: none, factor: "dropout 0.1 + decoupled decay 0.01", claim: fewer}
    mixout_0.9: {baseline: none, factor: "mixout(w_pre, 0.9)", claim: fewer}
  contrast:
    label: "Mosbach et al.'s optimizer × budget"
    cells: [devlin, mosbach_opt, devlin_long, mosbach_opt_long]
  early_discarding: {fractions: [0.1, 0.25, 0.5], n_start: [4, 8], keep: [1, 2], n_boot: 1000}
"""


def test_the_issue_example_parses():
    d = parse_design(yaml.safe_load(EXAMPLE)["design"])
    assert d.thresholds == (0.0, 1.0, 2.0, 4.0) and d.primary_threshold == 0.0
    assert (d.failure, d.never_learned_band, d.test, d.correction, d.secondary, d.alpha) == (
        "majority", 0.05, "fisher", "holm", "mannwhitney", 0.05)
    assert d.compare == (Compared("devlin", "none", "dropout 0.1 + decoupled decay 0.01", "fewer"),
                         Compared("mixout_0.9", "none", "mixout(w_pre, 0.9)", "fewer"))
    assert d.contrast == Contrast("Mosbach et al.'s optimizer × budget",
                                  ("devlin", "mosbach_opt", "devlin_long", "mosbach_opt_long"))
    assert d.early_discarding == EarlyDiscarding((0.1, 0.25, 0.5), (4, 8), (1, 2), 1000)
    with pytest.raises(AttributeError):
        d.alpha = 0.1  # frozen


OK_COMPARE = {"a": {"baseline": "b", "factor": "x", "claim": "fewer"}}


def valid(**keys):
    """A design with a valid compare block and ``keys`` over it."""
    return {"compare": OK_COMPARE, **keys}


BAD = [
    (valid(compare={}), "design.compare must map each compared cell"),
    ({"thresholds": [0]}, "design: no 'compare' key"),
    (valid(compare={"a": {"baseline": "b", "factor": "x", "claim": "less"}}),
     "design.compare.a.claim is 'less': choose fewer or more"),
    (valid(compare={"a": {"baseline": "a", "factor": "x", "claim": "fewer"}}),
     "design.compare.a.baseline is the cell itself"),
    (valid(compare={"a": {"baseline": "b", "claim": "fewer"}}), "design.compare.a: no 'factor' key"),
    (valid(compare={"a": {"baseline": "b", "factor": "x", "claim": "fewer", "why": 1}}),
     "design.compare.a: unknown key 'why'"),
    (valid(tresholds=[0]), "design: unknown key 'tresholds': choose from failure, thresholds"),
    (valid(thresholds=2), "design.thresholds must be a non-empty list"),
    (valid(thresholds=[0, -1]), "design.thresholds[1] is -1: give a number >= 0"),
    (valid(thresholds=[0, 0]), "design.thresholds lists a value twice"),
    (valid(alpha=1.5), "design.alpha is 1.5: give a number > 0 and < 1"),
    (valid(never_learned_band="small"), "design.never_learned_band is 'small': give a number > 0"),
    (valid(failure="lee2020"), "design.failure is 'lee2020': choose majority"),
    (valid(primary={"test": "chi2"}), "design.primary.test is 'chi2': choose fisher"),
    (valid(primary={"correction": "bonferroni"}), "design.primary.correction is 'bonferroni': choose holm"),
    (valid(secondary="ttest"), "design.secondary is 'ttest': choose mannwhitney or none"),
    (valid(contrast={"label": "x", "cells": ["a"]}), "design.contrast.cells must list two or more cell names"),
    (valid(contrast={"cells": ["a", "b"]}), "design.contrast.label must be a non-empty text"),
    (valid(early_discarding={"fractions": [0, 0.5]}),
     "design.early_discarding.fractions[0] is 0: give a number > 0 and < 1"),
    (valid(early_discarding={"n_start": [4], "keep": [4]}),
     "design.early_discarding: keep 4 is not fewer than n_start 4"),
    (valid(early_discarding={"n_boot": 0}), "design.early_discarding.n_boot is 0: give a whole number >= 1"),
    (valid(early_discarding={"n_start": [2.5]}), "design.early_discarding.n_start[0] is 2.5: give a whole number"),
    ("fisher", "design must be a mapping"),
]


@pytest.mark.parametrize(("block", "message"), BAD)
def test_a_malformed_design_is_one_line_naming_the_key(block, message):
    with pytest.raises(UserError) as err:
        parse_design(block)
    text = str(err.value)
    assert message in text and "\n" not in text and ": " in text


def test_a_cell_named_without_runs_is_an_error():
    d = parse_design({"compare": OK_COMPARE})
    check_cells(d, ["a", "b"])
    with pytest.raises(UserError, match=r"cell 'b' has no runs: run it, or remove it from the design"):
        check_cells(d, ["a", "c"])


def test_read_design_from_a_study_file_or_a_bare_block(tmp_path):
    study = tmp_path / "study.yaml"
    study.write_text("# @package _global_\nsweep: s\nhydra:\n  sweeper:\n    cells: {a: [x=1]}\n"
                     "    design:\n      compare: {a: {baseline: b, factor: f, claim: more}}\n")
    assert read_design(study).compare == (Compared("a", "b", "f", "more"),)
    bare = tmp_path / "d.yaml"
    bare.write_text("design:\n  compare: {a: {baseline: b, factor: f, claim: fewer}}\n")
    assert read_design(bare).compare[0].claim == "fewer"
    plain = tmp_path / "p.yaml"
    plain.write_text("sweep: p\nhydra: {sweeper: {cells: {}}}\n")
    assert read_design(plain) is None
    broken = tmp_path / "b.yaml"
    broken.write_text("design: [\n")
    with pytest.raises(UserError, match=r"is not valid YAML at line \d+: fix its syntax"):
        read_design(broken)


# --- applied to runs ---------------------------------------------------------------------------------

EPOCHS = {"none": 1, "good": 2, "bad": 3, "long_a": 4, "long_b": 5}  # cells differ in their config
FALL = [0.69, 0.69, 0.5, 0.4, 0.4, 0.5, 0.69, 0.69]
LEARN = [0.69, 0.6, 0.5, 0.45, 0.4, 0.35, 0.3, 0.3]


def _rec(cell, seed, final, peak=None, loss=LEARN):
    """A run of 8 steps, evaluations at steps 2, 4, 6, 8: climbs to ``peak`` (default: ``final``) at step 4."""
    peak = final if peak is None else peak
    scores = [50.0, peak, (peak + final) / 2, final]
    return RunRecord(run_id=f"{cell}-{seed}", sweep="designed", task="rt_polarity", cell=cell, label=cell, seed=seed,
                     status="ok", headline="accuracy", final={"accuracy": final},
                     eval_curve=[{"step": 2 * (i + 1), "epoch": i + 1, "metrics": {"accuracy": s}}
                                 for i, s in enumerate(scores)],
                     train_loss=[{"step": i + 1, "loss": v, "task_loss": v} for i, v in enumerate(loss)],
                     majority={"accuracy": 50.0},
                     config={"task": {"num_labels": 2}, "train": {"epochs": EPOCHS[cell]}, "sweep": "designed"})


def _store(root):
    """none: 6 restarts, 5 failed (3 never learned at 50, 1 collapsed from 70, 1 other at 49), 1 fine at 72.
    good: 6 restarts, 1 failed (other, 50), 5 fine (71..75); one at 51.5 fails only at majority + 2.
    bad: 6 restarts, 4 failed; long_a / long_b: the contrast, 2 restarts each."""
    recs = [_rec("none", 0, 50.0, loss=[0.69] * 8), _rec("none", 1, 50.0, loss=[0.70] * 8),
            _rec("none", 2, 50.0, loss=[0.68] * 8), _rec("none", 3, 50.0, peak=70.0, loss=FALL),
            _rec("none", 4, 49.0), _rec("none", 5, 72.0)]
    recs += [_rec("good", 0, 50.0)] + [_rec("good", i, 70.0 + i) for i in range(1, 5)] + [_rec("good", 5, 51.5)]
    recs += [_rec("bad", i, 50.0) for i in range(4)] + [_rec("bad", 4, 70.0), _rec("bad", 5, 71.0)]
    recs += [_rec("long_a", 0, 50.0), _rec("long_a", 1, 80.0), _rec("long_b", 0, 75.0), _rec("long_b", 1, 77.0)]
    write_records(recs, root)
    return load_results(root, "designed")


DESIGN = {"thresholds": [0, 2], "compare": {"good": {"baseline": "none", "factor": "regularizer g", "claim": "fewer"},
                                             "bad": {"baseline": "none", "factor": "regularizer b", "claim": "fewer"}},
          "contrast": {"label": "optimizer × budget", "cells": ["long_a", "long_b"]},
          "early_discarding": {"fractions": [0.5], "n_start": [4], "keep": [1], "n_boot": 100}}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("designed")
    _store(root)
    return root


@pytest.fixture(scope="module")
def table(store):
    return load_results(store, "designed")


def test_comparisons_counts_kinds_tests_and_holm(table):
    """good: 1/6 failed vs none 5/6. One-sided Fisher (fewer): F = 6 of N = 12, the cell draws 6;
    P(A <= 1) = [C(6,0)C(6,6) + C(6,1)C(6,5)] / C(12,6) = (1 + 36)/924 = 37/924 ≈ 0.0400.
    bad: 4/6 vs 5/6: F = 9, P(A <= 4) = 1 - P(A = 5) - P(A = 6) = 1 - [C(9,5)C(3,1) + C(9,6)C(3,0)]/924
    = 1 - (378 + 84)/924 = 462/924 = 0.5. Holm over the two: 0.0400·2 = 0.0801; max(0.0801, 0.5·1) -> 0.5.
    Neither is below 0.05 after Holm: both "no detectable difference on this testbed"."""
    rows = comparisons(table.runs, table.records, parse_design(DESIGN)).set_index("cell")
    assert rows.loc["good", "p_fisher"] == pytest.approx(37 / 924)
    assert rows.loc["bad", "p_fisher"] == pytest.approx(0.5)
    assert rows.loc["good", "p_holm"] == pytest.approx(2 * 37 / 924)
    assert rows.loc["bad", "p_holm"] == pytest.approx(0.5)
    assert set(rows["verdict"]) == {"no detectable difference on this testbed"}
    none = rows.loc["good", ["n_baseline", "failed_baseline"]].tolist()
    assert none == [6, 5]
    assert rows.loc["good", ["failed", "never_learned", "collapsed", "other", "unknown"]].tolist() == [1, 0, 0, 1, 0]
    assert 0 < rows.loc["good", "p_mannwhitney"] < 0.05  # good's scores sit above none's
    # the independent pieces agree
    assert holm([fisher_one_sided(1, 6, 5, 6, "fewer"), 0.5]) == pytest.approx([2 * 37 / 924, 0.5])


def test_a_significant_cell_reads_fewer_failures_on_this_testbed(table):
    """With alpha 0.1: good's Holm p 0.0801 < 0.1."""
    rows = comparisons(table.runs, table.records, parse_design({**DESIGN, "alpha": 0.1})).set_index("cell")
    assert rows.loc["good", "verdict"] == "fewer failures on this testbed (Holm p < 0.1)"
    assert rows.loc["bad", "verdict"] == "no detectable difference on this testbed"


def test_sensitivity_counts_per_threshold(table):
    """At majority + 2 good's 51.5 fails too: 2/6, and none's 6 restarts stay 5/6."""
    sens = sensitivity_table(table.runs, table.records, parse_design(DESIGN)).set_index("cell")
    assert sens.loc["good", "≤ majority"].startswith("1/6 (Holm p ")
    assert sens.loc["good", "≤ majority + 2"].startswith("2/6 (Holm p ")
    assert sens.loc["none", "≤ majority"] == "5/6" and sens.loc["long_b", "≤ majority"] == "0/2"


def test_the_contrast_has_counts_and_no_verdict(table):
    contrast = contrast_table(table.runs, table.records, parse_design(DESIGN))
    assert list(contrast["cell"]) == ["long_a", "long_b"]
    assert "verdict" not in contrast.columns and not any("p" == c.split()[-1] for c in contrast.columns)
    assert contrast.iloc[0]["failed (never learned / collapsed / other)"] == "1/2 (0 / 0 / 1)"


def test_mde_line_names_the_baseline_and_both_alphas(table):
    rows = comparisons(table.runs, table.records, parse_design(DESIGN))
    (line,) = mde_lines(rows, parse_design(DESIGN))
    assert "against `none` failing 5/6" in line and "α = 0.05" in line and "α/2 = 0.025" in line


def test_report_has_the_design_sections_and_none_without_a_design(table, tmp_path):
    md = unpadded(build_report(table, tmp_path / "with", "t", figures=False,
                               design=parse_design(DESIGN)).markdown.read_text())
    for heading in ("## Failures against the baseline, as the design states", "## Threshold sensitivity",
                    "## Compute contrast: optimizer × budget", "## Early discarding (Dodge et al. 2020)"):
        assert heading in md
    assert "| good | none | regularizer g | fewer failures | 6 | 1/6 (0 / 0 / 1) | 5/6 | 0.04 | 0.0801 |" in md
    start = md.index("## Failures against the baseline")
    early = md.index("## Early discarding")
    designed = md[start:md.index("\n## ", early + 1)]
    assert "agree" not in designed.lower() and "paper" not in designed.lower()  # never "agree with the paper"
    plain = build_report(table, tmp_path / "without", "t", figures=False).markdown.read_text()
    assert "Threshold sensitivity" not in plain and "Early discarding" not in plain


def test_report_with_a_design_naming_a_missing_cell_writes_nothing(table, tmp_path):
    design = parse_design({"compare": {"ghost": {"baseline": "none", "factor": "x", "claim": "fewer"}}})
    with pytest.raises(UserError, match="cell 'ghost' has no runs"):
        build_report(table, tmp_path / "r", "t", figures=False, design=design)
    assert not (tmp_path / "r" / "report.md").exists()


def _design_file(path, block=DESIGN):
    path.write_text(yaml.safe_dump({"design": block}, allow_unicode=True))
    return path


def test_table_views(store, tmp_path, capsys):
    results = store
    design = _design_file(tmp_path / "d.yaml")
    assert main(["table", "--sweep", "designed", "--results", str(results), "--view", "testbed",
                 "--design", str(design)]) == 0
    out = unpadded(capsys.readouterr().out)
    assert "| good | none | regularizer g |" in out and "Minimum detectable effect" in out
    assert "Compute contrast (no test, no verdict): optimizer × budget" in out
    assert main(["table", "--sweep", "designed", "--results", str(results), "--view", "early_discarding",
                 "--design", str(design)]) == 0
    out = unpadded(capsys.readouterr().out)
    assert "| none | 0.5 | 6 (5) |" in out and "| none | 0.5 | 4, 1 | 2.50 |" in out
    assert main(["table", "--sweep", "designed", "--results", str(results), "--view", "early_discarding",
                 "--format", "csv"]) == 0  # no design: the defaults
    header = capsys.readouterr().out.splitlines()[0]
    assert header.startswith("task,cell,fraction,N,k,n,compute,m,discarding,full,difference")


def test_table_testbed_view_without_a_design_is_one_line(store, tmp_path):
    results = store
    code, _, err = run_cli(tmp_path, ["table", "--sweep", "designed", "--results", str(results),
                                      "--view", "testbed"])
    assert code == 2
    assert "no design for sweeps/designed.yaml: add hydra.sweeper.design" in one_error_line(err)
    code, _, err = run_cli(tmp_path, ["table", "--sweep", "designed", "--results", str(results),
                                      "--view", "testbed", "--design", str(tmp_path / "nope.yaml")])
    assert code == 2 and "does not exist" in one_error_line(err)


def test_the_sweeper_ignores_the_design(tmp_path):
    """A study and its copy with a design block plan the same runs: after the plain one ran, the copy finds
    its one run done (run ids are shared between studies)."""
    write_study(tmp_path, "plain", {"dropout_0.1": ["regularizer=dropout", "regularizer.dropout.p=0.1"]}, seeds=1)
    text = (tmp_path / "sweeps" / "plain.yaml").read_text()
    designed = text.replace("sweep: plain", "sweep: withdesign").replace(
        "    cells:\n", "    design:\n      thresholds: [0, 2]\n      compare:\n"
                       "        dropout_0.1: {baseline: none, factor: dropout, claim: fewer}\n    cells:\n")
    (tmp_path / "sweeps" / "withdesign.yaml").write_text(designed)
    results = tmp_path / "r"
    code, out, err = run_cli(tmp_path, ["sweep", "--sweep", "plain", "--results", str(results), "--no-summary"],
                             timeout=300)
    assert code == 0, err
    code, out, err = run_cli(tmp_path, ["plan", "--sweep", "withdesign", "--results", str(results)])
    assert code == 0, err
    assert "1 done, 0 failed (will retry), 0 to do" in out
    assert read_design(tmp_path / "sweeps" / "withdesign.yaml").thresholds == (0.0, 2.0)


def test_report_finds_the_design_in_the_study_file(store, tmp_path):
    """`mixsweep report --sweep designed` reads sweeps/designed.yaml (found as `make sweep` finds it) and its
    hydra.sweeper.design; a malformed one is one line, and nothing is written."""
    (tmp_path / "sweeps").mkdir()
    study = tmp_path / "sweeps" / "designed.yaml"
    study.write_text(yaml.safe_dump({"sweep": "designed", "hydra": {"sweeper": {"cells": {}, "design": DESIGN}}},
                                    allow_unicode=True))
    code, out, err = run_cli(tmp_path, ["report", "--sweep", "designed", "--results", str(store), "--no-figures",
                                        "--out", str(tmp_path / "out")])
    assert code == 0, err
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Threshold sensitivity" in md and "hydra.sweeper.design" in md
    study.write_text(yaml.safe_dump({"sweep": "designed", "hydra": {"sweeper": {"design": {**DESIGN, "alpha": 2}}}}))
    code, _, err = run_cli(tmp_path, ["report", "--sweep", "designed", "--results", str(store), "--no-figures",
                                      "--out", str(tmp_path / "out2")])
    assert code == 2
    assert "hydra.sweeper.design.alpha is 2: give a number > 0 and < 1" in one_error_line(err)
    assert not (tmp_path / "out2").exists()
