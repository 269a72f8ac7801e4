"""``tokenize_splits``: tokenized ``datasets.Dataset`` splits, cached on disk and in memory.

A sweep runs the same task 20+ times, so tokenization is done once per

    key = sha256(cache_key, data fingerprint of every split, tokenizer fingerprint, max_length)

and kept (1) in an in-process memo and (2) under ``<cache_dir>/<key>/`` via
``DatasetDict.save_to_disk``. A build writes into a temp folder beside the final one and
renames it into place, so readers never see half a cache and a crash leaves only a ``*.tmp``
folder; a file lock makes concurrent workers build it once, and if a lock is not honoured (a
network file system) the loser of the rename discards its copy. Sequences are truncated to
``max_length`` and not padded: the runner pads per batch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from mixsweep.store.atomic import atomic_build_dir

ENCODED = ("input_ids", "attention_mask", "token_type_ids")
CHUNK_ROWS = 8192  # rows per tokenizer call: bounds the Python lists held at once
TMP_SUFFIX = ".tmp"
PIPELINE_PARTS = ("model", "normalizer", "pre_tokenizer", "post_processor", "decoder")

_MEMO: dict[str, dict[str, Any]] = {}


def tokenize_splits(
    splits: Mapping[str, pd.DataFrame],
    tokenizer: Any,
    *,
    max_length: int,
    cache_dir: str | Path | None,
    cache_key: Mapping[str, Any],
) -> dict[str, Any]:
    """Tokenize each split's ``text_a`` (, ``text_b``) into a Dataset with ``labels``.

    Columns: ``input_ids``, ``attention_mask``, ``token_type_ids`` (when the tokenizer makes
    them), ``labels`` (int64 class ids, or float32 scores for regression).
    """
    key = cache_digest(splits, tokenizer, max_length, cache_key)
    if key not in _MEMO:
        if cache_dir is None:
            _MEMO[key] = _tokenize(splits, tokenizer, max_length)
        else:
            _MEMO[key] = _load_or_build(Path(cache_dir) / key, splits, tokenizer, max_length, cache_key)
    return dict(_MEMO[key])


def clear_memo() -> None:
    """Forget the in-process copies (the disk cache stays)."""
    _MEMO.clear()


def cache_digest(
    splits: Mapping[str, pd.DataFrame], tokenizer: Any, max_length: int, cache_key: Mapping[str, Any]
) -> str:
    identity = {
        "key": {str(k): cache_key[k] for k in cache_key},
        "data": {name: frame_digest(frame) for name, frame in sorted(splits.items())},
        "tokenizer": tokenizer_digest(tokenizer),
        "max_length": int(max_length),
    }
    blob = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:24]


def frame_digest(frame: pd.DataFrame) -> str:
    """Content hash of a split: column names, dtypes and every value, in row order."""
    h = hashlib.sha256(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode("utf-8"))
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()


def tokenizer_digest(tokenizer: Any) -> str:
    """Hash of what decides the ids: the class, special tokens and the fast-tokenizer pipeline.

    The pipeline is hashed part by part (model, normalizer, pre-tokenizer, post-processor,
    decoder, added tokens) from their serialized state. Its truncation/padding state is left
    out: each call resets it (``max_length`` is keyed on its own).
    """
    h = hashlib.sha256(type(tokenizer).__name__.encode("utf-8"))
    h.update(json.dumps(tokenizer.special_tokens_map, sort_keys=True, default=str).encode("utf-8"))
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:  # a slow tokenizer: its vocabulary is what we can see
        h.update(json.dumps(tokenizer.get_vocab(), sort_keys=True).encode("utf-8"))
        return h.hexdigest()
    for part in PIPELINE_PARTS:
        component = getattr(backend, part)
        h.update(b"\0" + (component.__getstate__() if component is not None else b"none"))
    added = sorted((i, str(t)) for i, t in backend.get_added_tokens_decoder().items())
    h.update(json.dumps(added).encode("utf-8"))
    return h.hexdigest()


def _load_or_build(
    final: Path,
    splits: Mapping[str, pd.DataFrame],
    tokenizer: Any,
    max_length: int,
    cache_key: Mapping[str, Any],
) -> dict[str, Any]:
    from datasets import load_from_disk
    from filelock import FileLock

    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final) + ".lock"):
        if not final.is_dir():
            _build(final, splits, tokenizer, max_length, cache_key)
    return dict(load_from_disk(str(final)))


def _build(
    final: Path,
    splits: Mapping[str, pd.DataFrame],
    tokenizer: Any,
    max_length: int,
    cache_key: Mapping[str, Any],
) -> None:
    from datasets import DatasetDict

    def build(tmp: Path) -> None:
        with _quiet_progress():
            DatasetDict(_tokenize(splits, tokenizer, max_length)).save_to_disk(str(tmp))
        (tmp / "cache_key.json").write_text(json.dumps(dict(cache_key), indent=2, default=str) + "\n")

    atomic_build_dir(final, build)


@contextmanager
def _quiet_progress() -> Iterator[None]:
    """No "Saving the dataset" bars in sweep logs; restores the caller's setting."""
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


def _tokenize(splits: Mapping[str, pd.DataFrame], tokenizer: Any, max_length: int) -> dict[str, Any]:
    return {name: _tokenize_frame(frame, tokenizer, max_length) for name, frame in splits.items()}


def _tokenize_frame(frame: pd.DataFrame, tokenizer: Any, max_length: int) -> Any:
    from datasets import Dataset, Features, List, Value, concatenate_datasets

    regression = pd.api.types.is_float_dtype(frame["label"])
    chunks = []
    for start in range(0, max(len(frame), 1), CHUNK_ROWS):
        part = frame.iloc[start : start + CHUNK_ROWS]
        texts = [part["text_a"].tolist()] + ([part["text_b"].tolist()] if "text_b" in part else [])
        encoded = tokenizer(*texts, truncation=True, max_length=max_length)
        columns = {k: encoded[k] for k in ENCODED if k in encoded}
        features = Features(
            {k: List(Value("int64")) for k in columns}
            | {"labels": Value("float32" if regression else "int64")}
        )
        chunks.append(Dataset.from_dict(columns | {"labels": part["label"].tolist()}, features=features))
    return concatenate_datasets(chunks) if len(chunks) > 1 else chunks[0]
