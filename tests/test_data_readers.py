"""The strict GLUE TSV readers, on fixtures in the real formats and on broken copies of them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mixsweep.data.readers import read_glue_split
from mixsweep.data.tasks import get_task
from mixsweep.errors import UserError

GLUE = Path(__file__).parent / "fixtures" / "glue"
RUNNER_TASKS = ("rte", "mrpc", "cola", "stsb", "sst2")


@pytest.mark.parametrize("name", RUNNER_TASKS)
def test_fixtures_are_big_enough_for_runner_tests(name):
    task = get_task(name)
    train, dev = (read_glue_split(task, GLUE, s) for s in ("train", "dev"))
    assert len(train) >= 16 and len(dev) >= 8
    if not task.is_regression:
        assert set(train["label"]) == set(dev["label"]) == {0, 1}
    expected = ["text_a", "text_b", "label"] if task.is_pair else ["text_a", "label"]
    assert list(train.columns) == expected


def test_rte_maps_label_strings_to_hub_ids_and_keeps_quotes():
    dev = read_glue_split(get_task("rte"), GLUE, "dev")
    assert dev.loc[0].tolist() == ["The sun rises in the east.", "The sun rises.", 0]
    assert dev.loc[2, "label"] == 1  # not_entailment
    assert dev.loc[3, "text_a"] == 'Leo wrote a "short" novel.'


def test_mrpc_bom_is_stripped_from_the_header():
    assert (GLUE / "MRPC" / "train.tsv").read_bytes().startswith(b"\xef\xbb\xbfQuality")
    train = read_glue_split(get_task("mrpc"), GLUE, "train")
    assert train.loc[0].tolist() == ['He said the plan was "good".', "He called the plan good.", 1]
    assert train["label"].tolist()[:3] == [1, 1, 0]


def test_cola_has_no_header_and_four_columns():
    train = read_glue_split(get_task("cola"), GLUE, "train")
    assert len(train) == 16  # the first line is data, not a header
    assert train.loc[0].tolist() == ["Our friends won't buy this analysis.", 1]
    assert train.loc[1].tolist() == ["They drank the pub.", 0]


def test_stsb_reads_the_last_of_ten_columns_as_a_float_score():
    dev = read_glue_split(get_task("stsb"), GLUE, "dev")
    assert dev["label"].dtype.kind == "f"
    assert dev.loc[2].tolist() == ["She opens a 'red' door.", "A woman opens a door.", 3.75]


def test_sst2_single_sentence():
    train = read_glue_split(get_task("sst2"), GLUE, "train")
    assert train.loc[6].tolist() == ['it \'s a " must see " ', 1]


def test_mnli_uses_dev_matched_and_gold_label():
    task = get_task("mnli")
    assert read_glue_split(task, GLUE, "dev")["label"].tolist() == [0, 2, 1]
    assert read_glue_split(task, GLUE, "train").loc[0].tolist() == ["The man ate lunch.", "The man ate.", 0]


@pytest.mark.parametrize(
    ("name", "labels"), [("qnli", [0, 1, 0, 1]), ("qqp", [1, 0, 1, 0]), ("wnli", [1, 0, 1, 0])]
)
def test_other_glue_readers(name, labels):
    assert read_glue_split(get_task(name), GLUE, "train")["label"].tolist() == labels


@pytest.fixture
def glue_copy(tmp_path):
    shutil.copytree(GLUE, tmp_path / "glue")
    return tmp_path / "glue"


def _append(path: Path, line: str) -> int:
    """Append a line; return its 1-based line number."""
    text = path.read_text(encoding="utf-8")
    path.write_text(text + line + "\n", encoding="utf-8")
    return text.count("\n") + 1


def test_crlf_line_endings_are_accepted(glue_copy):
    path = glue_copy / "RTE" / "dev.tsv"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert read_glue_split(get_task("rte"), glue_copy, "dev")["label"].tolist()[:3] == [0, 0, 1]


def test_wrong_column_count_names_file_and_line(glue_copy):
    path = glue_copy / "RTE" / "train.tsv"
    line = _append(path, "99\tonly one sentence\tentailment")
    with pytest.raises(UserError, match=rf"train.tsv:{line}: expected 4 tab-separated columns, found 3"):
        read_glue_split(get_task("rte"), glue_copy, "train")


def test_unknown_label_names_file_and_line(glue_copy):
    line = _append(glue_copy / "RTE" / "dev.tsv", "9\tA.\tB.\tcontradiction")
    with pytest.raises(UserError, match=rf"dev.tsv:{line}: unknown label 'contradiction'; expected one of"):
        read_glue_split(get_task("rte"), glue_copy, "dev")


def test_non_numeric_stsb_score(glue_copy):
    line = _append(glue_copy / "STS-B" / "dev.tsv", "8\tg\tf\ty\t0009\tnone\tnone\tA.\tB.\tfive")
    with pytest.raises(UserError, match=rf"dev.tsv:{line}: score 'five' is not a finite number"):
        read_glue_split(get_task("stsb"), glue_copy, "dev")


def test_wrong_header_is_reported(glue_copy):
    path = glue_copy / "SST-2" / "dev.tsv"
    path.write_text("text\tlabel\nfine \t1\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"dev.tsv:1: no column 'sentence'"):
        read_glue_split(get_task("sst2"), glue_copy, "dev")


def test_empty_file_is_reported(glue_copy):
    (glue_copy / "RTE" / "dev.tsv").write_text("")
    with pytest.raises(UserError, match="dev.tsv is empty"):
        read_glue_split(get_task("rte"), glue_copy, "dev")


def test_invalid_utf8_is_reported(glue_copy):
    path = glue_copy / "CoLA" / "dev.tsv"
    path.write_bytes(path.read_bytes() + b"x\t1\t\tcaf\xe9\n")
    with pytest.raises(UserError, match=r"dev.tsv:9: not valid UTF-8"):
        read_glue_split(get_task("cola"), glue_copy, "dev")


def test_missing_folder_and_file_name_the_layout(glue_copy):
    with pytest.raises(UserError, match=r"GLUE folder .*nowhere does not exist"):
        read_glue_split(get_task("rte"), glue_copy / "nowhere", "train")
    (glue_copy / "CoLA" / "dev.tsv").unlink()
    with pytest.raises(UserError, match=r"missing .*CoLA/dev.tsv: .*<glue_dir>/CoLA/\{train.tsv,dev.tsv\}"):
        read_glue_split(get_task("cola"), glue_copy, "dev")
