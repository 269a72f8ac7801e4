"""What a finetuning run keeps besides its scores: per-example dev outputs and dev representations.

The instability measures (:mod:`mixsweep.instability`, Du & Nguyen 2023) compare the restarts of a
cell on the same examples, so each run keeps, in its run directory (written by :mod:`mixsweep.store.runs`):

- ``outputs.npz``: at the eval points the selection protocols use (``final``, ``best``, ``zhang2021``),
  the predicted label and the class probabilities (fp16) of every dev example in dev order, or the
  predicted score (float32) for regression; the gold labels, the val/test halves, and the dev set's
  content hash (sha256 of the token ids and labels the model saw), so that two runs are compared only
  on the same examples. A point shared by two protocols is stored once.
- ``representations.npz``: at the final checkpoint, fp16 representations of (at most
  ``record.max_examples``) dev examples: the classifier's input as the head reads it (``head``:
  BERT's pooled [CLS], RoBERTa's first-token state) and the [CLS] (first-token) hidden state of the
  chosen transformer layers (the authors take every layer's [CLS], embeddings excluded).

Which eval points: the best and zhang2021 points are known only after training, so the outputs of
every eval point are kept in memory (n × K float32 logits per point, 118 kB for 9,815 examples and 3
classes) and the chosen ones written at the end; nothing is re-evaluated. Representations are taken
during the final evaluation's own pass over dev (:class:`RepresentationCapture`), so they cost no extra
pass (the paper uses the best-validation checkpoint; this harness keeps no checkpoints, so the final
one is used, as issue #22 asks).

Config (``record``, declared in ``mixsweep.config.settings.Record``; not part of the run id, like ``progress``)::

    record:
      outputs: true                         # false: no outputs.npz
      representations: [head, quarters]     # null: none. Items: head, all, last, quarters (L/4, L/2,
                                            #   3L/4, L), or a layer number k (1..L)
      max_examples: 1000                    # representations of at most this many dev examples; null: all
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mixsweep.config.settings import Record, as_settings
from mixsweep.errors import UserError


@dataclass
class RunOutputs:
    """What :func:`mixsweep.store.runs.write_outputs` writes: arrays plus a JSON ``meta`` per file."""

    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    outputs_meta: dict[str, Any] = field(default_factory=dict)
    representations: dict[str, np.ndarray] = field(default_factory=dict)
    representations_meta: dict[str, Any] = field(default_factory=dict)


def layer_names(items: Sequence[Any], num_layers: int) -> list[str]:
    """``head`` and ``layer_k`` (1-based transformer layer k) for the configured items, deduplicated, in
    depth order. ``quarters`` = layers ⌈L/4⌉, ⌈L/2⌉, ⌈3L/4⌉, L."""
    layers: set[int] = set()
    for item in items:
        if item == "all":
            layers.update(range(1, num_layers + 1))
        elif item == "last":
            layers.add(num_layers)
        elif item == "quarters":
            layers.update(int(np.ceil(num_layers * q / 4)) for q in (1, 2, 3, 4))
        elif isinstance(item, int):
            k = item if item > 0 else num_layers + 1 + item
            if not 1 <= k <= num_layers:
                raise UserError(f"record.representations: layer {item} does not exist in a {num_layers}-layer "
                                f"model: use 1..{num_layers} or −1 for the last")
            layers.add(k)
    return [f"layer_{k}" for k in sorted(layers)] + (["head"] if "head" in items else [])


def representation_positions(n: int, max_examples: int | None) -> np.ndarray:
    """The dev positions whose representations are kept: all, or the ``max_examples`` positions with the
    smallest sha256(str(i)) (a fixed pseudo-random subset that every run of the same dev set shares),
    in increasing order."""
    if max_examples is None or n <= int(max_examples):
        return np.arange(n)
    keys = sorted(range(n), key=lambda i: hashlib.sha256(str(i).encode("ascii")).hexdigest())
    return np.sort(np.array(keys[: int(max_examples)], dtype=np.int64))


def dev_hash(dataset: Any, labels: np.ndarray) -> str:
    """sha256 of the dev examples as the model reads them: each example's token ids, then the labels."""
    h = hashlib.sha256()
    for ids in dataset["input_ids"]:
        h.update(np.asarray(ids, dtype=np.int64).tobytes())
        h.update(b"|")
    h.update(np.asarray(labels).astype(np.float64).tobytes())
    return h.hexdigest()


def selected_points(curve: list[dict[str, Any]], headline: str, status: str) -> dict[str, int | None]:
    """Index into ``curve`` of each protocol's point, by the protocols' own rules (one definition each):
    :func:`mixsweep.records.best_point` and :func:`mixsweep.records.zhang2021_index`."""
    from mixsweep.records import best_point, zhang2021_index

    best = best_point(curve, headline)
    return {
        "final": len(curve) - 1 if curve and status == "ok" else None,
        "best": next((i for i, p in enumerate(curve) if p is best), None),
        "zhang2021": zhang2021_index(curve, headline),
    }


def build_outputs(
    logits: list[np.ndarray], curve: list[dict[str, Any]], *, headline: str, status: str, regression: bool,
    labels: np.ndarray, halves: Mapping[str, np.ndarray], content_hash: str,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays and meta of ``outputs.npz`` from the logits kept at every eval point (same order as ``curve``)."""
    points = selected_points(curve, headline, status)
    arrays: dict[str, np.ndarray] = {"labels": np.asarray(labels)}
    for name in ("val_half", "test_half"):
        if name in halves:
            arrays[name] = np.asarray(halves[name], dtype=np.int32)
    steps = {}
    for proto, idx in points.items():
        if idx is None:
            continue
        step = int(curve[idx]["step"])
        steps[proto] = step
        x = np.asarray(logits[idx], dtype=np.float32)
        if regression:
            arrays[f"score_{step}"] = x.reshape(len(x), -1)[:, 0]
        else:
            arrays[f"pred_{step}"] = x.argmax(-1).astype(np.int16)
            arrays[f"prob_{step}"] = _softmax(x).astype(np.float16)
    meta = {"points": steps, "dev_hash": content_hash, "regression": bool(regression),
            "num_classes": None if regression else int(np.asarray(logits[0]).shape[-1]) if logits else None,
            "n_examples": len(labels)}
    return arrays, meta


def _softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class RepresentationCapture:
    """The representations of one forward pass over dev (in dev order) that runs anyway: the run's
    final evaluation. Inside ``with capture:``, call the model with ``**capture.forward_kwargs`` and
    hand each batch's output to :meth:`add`. Kept per kept position: the first-token state of each
    ``layer_k`` (hidden_states[k], k ≥ 1; hidden_states[0] are the embeddings) and, for ``head``, the
    input of the head's last linear map, the one that gives the logits (:func:`logits_layer`): BERT's
    pooler output (``classifier`` is that linear map), RoBERTa's and ELECTRA's tanh/GELU(dense(h_L[CLS]))
    (``classifier.out_proj``). Not ``classifier``'s own input: RoBERTa's head receives the whole last
    layer and slices its first token, which would repeat ``layer_L``. fp16."""

    def __init__(self, model: Any, names: list[str], positions: np.ndarray):
        if "head" in names and getattr(model, "classifier", None) is None:
            raise UserError("record.representations=head needs a model with a `classifier` head: "
                            "drop head from record.representations")
        self.model, self.names, self.positions = model, list(names), positions
        self.keep = np.zeros(int(positions.max()) + 1 if len(positions) else 0, dtype=bool)
        self.keep[positions] = True
        self.forward_kwargs = {"output_hidden_states": True} if any(n != "head" for n in names) else {}
        self._rows: dict[str, list[np.ndarray]] = {n: [] for n in names}
        self._captured: list[Any] = []
        self._hook: Any = None
        self._offset = 0

    def __enter__(self) -> RepresentationCapture:
        self._rows = {n: [] for n in self.names}
        self._offset = 0
        if "head" in self.names:
            self._hook = logits_layer(self.model.classifier).register_forward_pre_hook(
                lambda _m, args: self._captured.append(args[0]))
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        self._captured.clear()

    def add(self, out: Any, size: int) -> None:
        """Keep the rows of this batch (``size`` examples, the next ones in dev order) that are kept."""
        start, self._offset = self._offset, self._offset + size
        mask = np.zeros(size, dtype=bool)
        window = self.keep[start:start + size]
        mask[:len(window)] = window
        head_input = self._captured[-1] if self._captured else None
        self._captured.clear()
        if not mask.any():
            return
        for n in self.names:
            if n == "head":
                x = head_input
                x = x[:, 0] if x.dim() == 3 else x
            else:
                x = out.hidden_states[int(n.split("_")[1])][:, 0]
            self._rows[n].append(x.float().cpu().numpy()[mask].astype(np.float16))

    def arrays(self) -> dict[str, np.ndarray]:
        """Each name's (kept examples × hidden) fp16 matrix, rows in dev order."""
        return {n: np.concatenate(r) for n, r in self._rows.items() if r}


def logits_layer(head: Any) -> Any:
    """The linear map that gives a classification head's logits: the head itself when it is one
    (BERT, DistilBERT), else its last ``nn.Linear`` in module order (RoBERTa's and ELECTRA's
    ``out_proj``, after ``dense``)."""
    from torch import nn

    if isinstance(head, nn.Linear):
        return head
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else head


def representation_capture(record: Record | Mapping[str, Any] | None, model: Any,
                           n_dev: int) -> RepresentationCapture | None:
    """The capture the ``record`` block asks for (None when it keeps no representations)."""
    record = as_settings(Record, record or {}, "record")
    if not record.representations:
        return None
    names = layer_names(record.representations, int(getattr(model.config, "num_hidden_layers", 0)))
    return RepresentationCapture(model, names, representation_positions(n_dev, record.max_examples))


def run_outputs(record: Record | Mapping[str, Any] | None, *, logits: list[np.ndarray], curve: list[dict[str, Any]],
                task: Any, status: str, labels: np.ndarray, halves: Mapping[str, np.ndarray],
                dev_dataset: Any, capture: RepresentationCapture | None) -> RunOutputs | None:
    """Everything a run keeps (None when ``record`` turns both off or there is no eval point).
    ``capture`` is the one the final evaluation filled (its representations are kept when the run is ok)."""
    record = as_settings(Record, record or {}, "record")
    if not curve or not logits or (not record.outputs and not record.representations):
        return None
    content_hash = dev_hash(dev_dataset, labels)
    out = RunOutputs()
    if record.outputs:
        out.outputs, out.outputs_meta = build_outputs(
            logits, curve, headline=task.headline, status=status, regression=task.is_regression,
            labels=labels, halves=halves, content_hash=content_hash)
    reps = capture.arrays() if capture is not None and status == "ok" else {}
    if reps:
        out.representations = {f"rep_{k}": v for k, v in reps.items()} | {
            "positions": capture.positions.astype(np.int32)}
        out.representations_meta = {"layers": list(reps), "step": int(curve[-1]["step"]), "dev_hash": content_hash,
                                    "n_examples": len(labels), "dtype": "float16"}
    return out


# ---- the file format (written and read through mixsweep.store.runs) ----------------------------------

def save_npz(path: Path, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], compress: bool) -> None:
    """``arrays`` plus ``meta`` as a JSON string, in one .npz (no pickles: np.load(allow_pickle=False))."""
    payload = {**arrays, "meta": np.array(json.dumps(meta, sort_keys=True))}
    with open(path, "wb") as fh:
        (np.savez_compressed if compress else np.savez)(fh, **payload)


class DamagedFile(ValueError):
    """A run's ``.npz`` that is there but is not what :func:`save_npz` writes (the message says why):
    the analysis reads the run as one without that file and warns."""


# the first bytes of an .npy (\\x93NUMPY), a zip archive (an .npz is one) and a pickle (protocol >= 2)
_NPY_MAGIC, _ZIP_MAGIC, _PICKLE_PROTOCOL = b"\x93NUM", b"PK\x03\x04", b"\x80"


def load_npz(path: Path, check: Callable[[dict[str, tuple], dict[str, Any]], None] | None = None,
             data: bool = True) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """The arrays and meta of a file written by :func:`save_npz`; None if there is no such file.

    Anything else at ``path`` raises :class:`DamagedFile` with the reason: a folder, an empty file, a
    single ``.npy``, a pickle (never unpickled), a truncated archive, a pickled (object) member, a
    ``meta`` that is not a JSON object, or members that ``check(shapes, meta)`` rejects (``shapes``:
    member name -> (shape, dtype), read from the .npy headers). ``data=False`` reads the headers and
    ``meta`` only (the arrays come back empty): a cheap check of a large file."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return None
    if path.is_dir():
        raise DamagedFile("a folder where a file belongs")
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(_ZIP_MAGIC))
    except OSError as e:
        raise DamagedFile(f"unreadable ({e.strerror or e})") from e
    if not head:
        raise DamagedFile("empty (0 bytes)")
    if head.startswith(_NPY_MAGIC):
        raise DamagedFile("a single .npy array, not an .npz archive")
    if head.startswith(_PICKLE_PROTOCOL):
        raise DamagedFile("a Python pickle, not an .npz archive (pickles are never loaded)")
    if head != _ZIP_MAGIC:
        raise DamagedFile("not an .npz archive")
    try:
        with zipfile.ZipFile(path) as archive:
            members = {name.removesuffix(".npy"): name for name in archive.namelist()}
            shapes = {key: _npy_header(archive, name) for key, name in members.items()}
            meta = _meta(archive, members) if "meta" in members else {}
            if check is not None:
                check({k: v for k, v in shapes.items() if k != "meta"}, meta)
            arrays = {key: _npy_array(archive, name) for key, name in members.items()
                      if key != "meta" and data}
    except DamagedFile:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, KeyError,
            NotImplementedError) as e:  # truncated, bad CRC, a damaged deflate stream or npy header
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DamagedFile(f"truncated or damaged archive ({why})") from e
    return arrays, meta


def _npy_header(archive: zipfile.ZipFile, name: str) -> tuple[tuple[int, ...], np.dtype]:
    with archive.open(name) as fp:
        version = np.lib.format.read_magic(fp)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _fortran, dtype = read(fp)
    if dtype.hasobject:
        raise DamagedFile(f"member '{name}' holds pickled Python objects (never loaded)")
    return tuple(shape), dtype


def _npy_array(archive: zipfile.ZipFile, name: str) -> np.ndarray:
    with archive.open(name) as fp:
        return np.lib.format.read_array(fp, allow_pickle=False)


def _meta(archive: zipfile.ZipFile, members: dict[str, str]) -> dict[str, Any]:
    text = str(_npy_array(archive, members["meta"]))
    try:
        meta = json.loads(text)
    except ValueError as e:
        raise DamagedFile(f"its meta is not JSON ({e})") from e
    if not isinstance(meta, dict):
        raise DamagedFile(f"its meta is a JSON {type(meta).__name__}, not an object")
    return meta


def _need(ok: bool, why: str) -> None:
    if not ok:
        raise DamagedFile(why)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def check_outputs(shapes: dict[str, tuple], meta: dict[str, Any]) -> None:
    """What :func:`build_outputs` writes: ``labels`` (n,); per step of ``meta.points`` ``pred_<step>``
    (n,) integers and ``prob_<step>`` (n, K), or ``score_<step>`` (n,) for regression; the halves (m,)
    integers. Raises :class:`DamagedFile` naming the first member that is not so."""
    points = meta.get("points")
    _need(isinstance(points, dict) and all(_is_int(s) or s is None for s in points.values()),
          "its meta has no points {protocol: step}")
    _need(isinstance(meta.get("regression"), bool), "its meta says neither regression true nor false")
    _need(isinstance(meta.get("dev_hash"), str), "its meta has no dev_hash")
    _need("labels" in shapes and len(shapes["labels"][0]) == 1, "no labels (n,) array")
    n = shapes["labels"][0][0]
    _need(meta.get("n_examples", n) == n, f"{n} labels for n_examples={meta.get('n_examples')}")
    for step in {s for s in points.values() if s is not None}:
        names = [f"score_{step}"] if meta["regression"] else [f"pred_{step}", f"prob_{step}"]
        for name in names:
            _need(name in shapes, f"no {name} array for step {step} of its meta")
            shape, dtype = shapes[name]
            _need(shape[:1] == (n,), f"{name} has shape {shape}, not {n} rows like its labels")
            if name.startswith("prob_"):
                k = meta.get("num_classes")
                _need(len(shape) == 2 and shape[1] >= 2 and (k is None or shape[1] == k),
                      f"{name} has shape {shape}, not ({n}, num_classes={k})")
                _need(dtype.kind == "f", f"{name} holds {dtype}, not probabilities")
            else:
                _need(len(shape) == 1, f"{name} has shape {shape}, not ({n},)")
                _need(dtype.kind in ("i", "u") if name.startswith("pred_") else dtype.kind in ("f", "i", "u"),
                      f"{name} holds {dtype}")
    for name in ("val_half", "test_half"):
        if name in shapes:
            _need(len(shapes[name][0]) == 1 and shapes[name][1].kind in ("i", "u"),
                  f"{name} is not a list of positions")


def check_output_values(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """The values :func:`check_outputs` cannot see in the headers: class ids in 0..K-1 and dev
    positions in 0..n-1."""
    n = len(arrays["labels"])
    k = next((a.shape[1] for name, a in arrays.items() if name.startswith("prob_")), None)
    for name, a in arrays.items():
        if name.startswith("pred_") and len(a) and k is not None:
            _need(int(a.min()) >= 0 and int(a.max()) < k, f"{name} holds class ids outside 0..{k - 1}")
        if name in ("val_half", "test_half") and len(a):
            _need(int(a.min()) >= 0 and int(a.max()) < n, f"{name} holds positions outside 0..{n - 1}")


def check_representations(shapes: dict[str, tuple], meta: dict[str, Any]) -> None:
    """What :func:`run_outputs` writes: ``positions`` (m,) integers and, per name in ``meta.layers``,
    ``rep_<layer>`` (m, hidden) floats."""
    layers = meta.get("layers")
    _need(isinstance(layers, list) and bool(layers) and all(isinstance(x, str) for x in layers),
          "its meta lists no layers")
    _need(isinstance(meta.get("dev_hash"), str), "its meta has no dev_hash")
    _need("positions" in shapes and len(shapes["positions"][0]) == 1 and shapes["positions"][1].kind in ("i", "u"),
          "no positions (m,) array")
    m = shapes["positions"][0][0]
    for layer in layers:
        name = f"rep_{layer}"
        _need(name in shapes, f"no {name} array for layer {layer} of its meta")
        shape, dtype = shapes[name]
        _need(len(shape) == 2 and shape[0] == m and shape[1] >= 1 and dtype.kind == "f",
              f"{name} has shape {shape} ({dtype}), not ({m} positions, hidden) floats")


@dataclass
class PointOutputs:
    """One run's outputs at one protocol point, as the analysis reads them."""

    pred: np.ndarray  # (n,) class ids, or scores for regression
    prob: np.ndarray | None  # (n, K) or None (regression)
    labels: np.ndarray
    subset: np.ndarray  # positions the protocol scores (all, or the test half for zhang2021)
    dev_hash: str
    regression: bool


def point_outputs(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], protocol: str) -> PointOutputs | None:
    """The outputs at ``protocol``'s point (None if the run did not reach it)."""
    step = (meta.get("points") or {}).get(protocol)
    if step is None:
        return None
    regression = bool(meta.get("regression"))
    pred = arrays.get(f"score_{step}" if regression else f"pred_{step}")
    if pred is None:
        return None
    labels = arrays["labels"]
    subset = arrays.get("test_half") if protocol == "zhang2021" else None
    return PointOutputs(pred=pred, prob=None if regression else arrays.get(f"prob_{step}"), labels=labels,
                        subset=np.arange(len(labels)) if subset is None else subset,
                        dev_hash=str(meta.get("dev_hash", "")), regression=regression)
