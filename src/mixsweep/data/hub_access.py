"""How mixsweep talks to the Hugging Face hub: once, briefly, and quietly.

huggingface_hub retries a failed request five times with exponential backoff (about 25 s per
file), so a machine that cannot reach the hub spent minutes per run printing ``Retrying in 8s``
before the real error. Here a request gets one attempt with a short timeout, and the library's
warnings stay hidden unless ``--debug`` (``MIXSWEEP_DEBUG=1``) is given.
"""

from __future__ import annotations

import functools
import os

PROBE_TIMEOUT_S = 5.0
OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
# Models that never reach the hub: the packaged MiniLM, and a random-init BERT that borrows its tokenizer.
OFFLINE_PRESETS = ("minilm_l6", "tiny")


def debug() -> bool:
    return os.environ.get("MIXSWEEP_DEBUG") == "1"


def offline() -> bool:
    """Whether the user switched the hub off (any of the HF offline variables)."""
    return any(os.environ.get(v, "").upper() in ("1", "ON", "YES", "TRUE") for v in OFFLINE_VARS)


@functools.lru_cache(maxsize=1)
def one_attempt() -> None:
    """Make every hub request of this process a single attempt, and silence hub/transformers logs.

    ``http_backoff`` and ``http_stream_backoff`` take ``max_retries`` as a keyword with default 5,
    and every download path calls them without it, so their keyword default is the one knob.
    """
    from huggingface_hub.utils import _http

    for fn in (_http.http_backoff, _http.http_stream_backoff):
        fn = getattr(fn, "__wrapped__", fn)
        if fn.__kwdefaults__ and "max_retries" in fn.__kwdefaults__:
            fn.__kwdefaults__["max_retries"] = 0
    if debug():
        return
    import huggingface_hub

    huggingface_hub.utils.logging.set_verbosity_error()
    try:
        import transformers

        transformers.logging.set_verbosity_error()
    except ImportError:
        pass


@functools.lru_cache(maxsize=8)
def reachable(repo_id: str, revision: str | None = None, repo_type: str = "model") -> str | None:
    """``None`` when the hub answers for ``repo_id`` within :data:`PROBE_TIMEOUT_S`, else the reason.

    One HEAD request for the repo's ``config.json`` (models) or its card (datasets), no retry.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    one_attempt()
    filename = "config.json" if repo_type == "model" else "README.md"
    url = hf_hub_url(repo_id, filename, revision=revision, repo_type=repo_type)
    try:
        get_hf_file_metadata(url, timeout=PROBE_TIMEOUT_S, retry_on_errors=False)
    except EntryNotFoundError:
        return None  # the repo exists; the file name was only a probe
    except (RepositoryNotFoundError, RevisionNotFoundError) as e:
        return f"not found on the hub ({type(e).__name__})"
    except Exception as e:  # noqa: BLE001 - any network failure means "not reachable"
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        return f"the hub is unreachable ({reason[:120]})"
    return None


def cached_model(repo_id: str, revision: str | None = None) -> bool:
    """Whether a hub snapshot of the model (its config.json) is in the local cache."""
    from huggingface_hub import try_to_load_from_cache

    try:
        hit = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    except Exception:  # noqa: BLE001 - a malformed id is simply "not cached"
        return False
    return isinstance(hit, str)
