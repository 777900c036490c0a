"""Warm starts: compute the views people open before they open them, in a background thread.

Why: a result is computed once per process and filter set (``ui.cache.cached``), so the first user
after a server start, and the first after every import (on any replica: the cache keys on the
database's table versions), waits for the computation.  Here one thread per process does that work
instead:

* every ``cached`` call a page makes is remembered (function, arguments: at most ``MAX_CALLS``, most
  recent first) and written to a small file beside the other processes' (``CCM_WARM_FILE``, default in
  the temp directory, one per database), so a process that starts (a restart, a new replica) knows
  which views were in use;
* a process that knows no view yet (a new deployment) starts with the Overview's default view
  (``default_views``), so the first user after a deployment does not meet it cold either;
* the thread starts with the process's database engine (the first script run, i.e. the first sign-in
  page shown) and then, every ``POLL_SECONDS``, reads the table versions; when they changed (an import
  through any replica or the command line), at its first pass, and before results reach the cache's
  time limit, it recomputes every remembered call whose result is missing or stale, most recently
  used first.

Only functions of ``ccm_core`` are ever called from the file, with arguments rebuilt from plain JSON
(numbers, text, dates, ``Filters``): the file names views, never data.  A failure is logged and the
thread goes on; a user then simply computes the view as before.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import importlib
import json
import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ccm_core.engine.filters import Filters, default_report_month, filter_options

log = logging.getLogger(__name__)

MAX_CALLS = 200
POLL_SECONDS = 5.0
_lock = threading.Lock()
_calls: OrderedDict[tuple, tuple[Callable, tuple, dict]] = OrderedDict()
_started: dict[str, threading.Thread] = {}
_dirty = threading.Event()
stats = {"passes": 0, "computed": 0, "failed": 0, "last_pass_s": 0.0}


# --------------------------------------------------------------------------- remembering
def remember(key: tuple, fn: Callable, args: tuple, kwargs: dict) -> None:
    """Called by ``ui.cache.cached`` for every call (hit or miss): cheap, no database work."""
    if not getattr(fn, "__module__", "").startswith("ccm_core"):
        return
    with _lock:
        known = key in _calls
        _calls[key] = (fn, args, kwargs)
        _calls.move_to_end(key)
        while len(_calls) > MAX_CALLS:
            _calls.popitem(last=False)
    if not known:
        _dirty.set()


def warm_file(url: str) -> Path:
    explicit = os.environ.get("CCM_WARM_FILE")
    if explicit:
        return Path(explicit)
    digest = hashlib.sha1(url.encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"ccm_warm_{digest}.json"


def encode(v: Any) -> Any:
    """A call argument as plain JSON (numbers, text, dates, tuples, ``Filters``); TypeError for anything else."""
    if isinstance(v, Filters):
        return {"__filters__": {k: encode(x) for k, x in dataclasses.asdict(v).items()}}
    if isinstance(v, dt.date):
        return {"__date__": v.isoformat()}
    if isinstance(v, tuple):
        return {"__tuple__": [encode(x) for x in v]}
    if isinstance(v, list):
        return [encode(x) for x in v]
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise TypeError(type(v).__name__)


def decode(v: Any) -> Any:
    """The inverse of ``encode``."""
    if isinstance(v, dict):
        if "__filters__" in v:
            return Filters(**{k: decode(x) for k, x in v["__filters__"].items()})
        if "__date__" in v:
            return dt.date.fromisoformat(v["__date__"])
        if "__tuple__" in v:
            return tuple(decode(x) for x in v["__tuple__"])
        raise ValueError("unknown value in the warm file")
    if isinstance(v, list):
        return [decode(x) for x in v]
    return v


def _resolve(name: str) -> Callable:
    module, _, qual = name.partition(":")
    if not module.startswith("ccm_core"):
        raise ValueError(f"not a ccm_core function: {name}")
    obj: Any = importlib.import_module(module)
    for part in qual.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"not callable: {name}")
    return obj


def save(url: str) -> None:
    """Write the remembered calls (most recent last) for processes that start later."""
    rows = []
    with _lock:
        items = list(_calls.values())
    for fn, args, kwargs in items:
        try:
            rows.append(
                {
                    "fn": f"{fn.__module__}:{fn.__qualname__}",
                    "args": encode(tuple(args)),
                    "kwargs": {k: encode(v) for k, v in kwargs.items()},
                }
            )
        except TypeError:
            continue  # an argument we cannot write down: that view is warmed by its first user only
    path = warm_file(url)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(rows))
    tmp.replace(path)


def load(url: str, key_of: Callable[[Callable, tuple, dict], tuple]) -> int:
    """Remember the calls another process wrote down; returns how many."""
    path = warm_file(url)
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError):
        return 0
    n = 0
    for row in rows:
        try:
            fn = _resolve(row["fn"])
            args = decode(row["args"])
            kwargs = {k: decode(v) for k, v in row.get("kwargs", {}).items()}
        except Exception:  # noqa: BLE001 - a stale or foreign entry is skipped
            continue
        with _lock:
            key = key_of(fn, args, kwargs)
            if key not in _calls:
                _calls[key] = (fn, args, kwargs)
                _calls.move_to_end(key, last=False)  # behind what this process has used itself
                n += 1
    return n


# --------------------------------------------------------------------------- the thread
def ensure_started(url: str) -> None:
    """Start this process's warmer for ``url`` once (called when the app first opens the database)."""
    if url in _started or not enabled():
        return
    with _lock:
        if url in _started:
            return
        t = threading.Thread(target=_loop, args=(url,), name="ccm-warmer", daemon=True)
        _started[url] = t
    t.start()


def enabled() -> bool:
    """On unless ``CCM_WARM=0``; off by default under the test suite (``CCM_TESTING=1``), whose tests
    start it themselves."""
    default = "0" if os.environ.get("CCM_TESTING") == "1" else "1"
    return os.environ.get("CCM_WARM", default) == "1"


def default_views(options: dict, through: dict, today: dt.date) -> list[tuple[Callable, tuple, dict]]:
    """The calls the Overview makes for its default filters (the last complete month, every clinic,
    CCM): what the first user after a new deployment opens.  ``options`` and ``through`` are the results
    of ``engine.filters.filter_options`` and ``weekly.data_through(today)``.  tests/test_warm.py checks a default
    Overview render computes nothing once these are cached, so this list cannot drift from the page."""
    from ccm_core.kpis import program as kpis
    from ccm_core.kpis import weekly
    from ccm_core.storage.db import month_int

    if not options["months"]:
        return []
    f = Filters.for_month(default_report_month(options["months"], today))
    as_of = through["overall"]
    calls: list[tuple[Callable, tuple, dict]] = [(weekly.open_month_lag_days, (), {})]
    calls += [(weekly.headline_values, (f.with_months(m),), {}) for m in weekly.trend_months(f.month_to, 12)]
    if as_of is not None:
        calls.append((kpis.pacing_forecast, (f.with_months(month_int(as_of)), as_of), {}))
    calls.append((weekly.attention_items, (f, as_of), {}))
    return calls


def seed_default_views(url: str) -> int:
    """When this process knows no view in use (a new deployment: no file yet), remember the Overview's
    default view so the warmer computes it before the first user signs in; returns how many calls."""
    from ccm_core.kpis import weekly
    from ui import cache as data

    with _lock:
        if _calls:
            return 0
    versions = data.read_versions(url)
    today = dt.date.today()

    def get(fn: Callable, *args: Any) -> Any:
        key = data.call_key(fn, args, {}, url)
        remember(key, fn, args, {})
        return data.compute_into_cache(key, fn, args, {}, url, versions)

    options = get(filter_options)
    through = get(weekly.data_through, today)
    calls = default_views(options, through, today)
    for fn, args, kwargs in calls:
        remember(data.call_key(fn, args, kwargs, url), fn, args, kwargs)
    return len(calls) + 2


def _loop(url: str) -> None:
    from ui import cache as data

    load(url, lambda fn, args, kwargs: data.call_key(fn, args, kwargs, url))
    try:
        seed_default_views(url)
    except Exception:  # noqa: BLE001 - warming is best effort
        log.exception("seeding the default views failed")
    seen: tuple | None = None
    last = 0.0
    while True:
        try:
            versions = data.read_versions(url)
            marker = tuple(sorted(versions.items()))
            # a write anywhere, a view not seen before, or results about to reach the cache's time limit
            if marker != seen or _dirty.is_set() or time.monotonic() - last > data.CACHE_TTL_SECONDS / 3:
                _dirty.clear()
                seen, last = marker, time.monotonic()
                warm_pass(url, versions)
                save(url)
        except Exception:  # noqa: BLE001 - warming is best effort; users compute what is missing
            log.exception("warming pass failed")
        time.sleep(POLL_SECONDS)


def warm_pass(url: str, versions: dict[str, int]) -> int:
    """Compute every remembered call whose result is missing or stale; returns how many were computed."""
    from ui import cache as data

    t0 = time.perf_counter()
    with _lock:
        todo = list(reversed(_calls.items()))  # most recently used first
    computed = 0
    for key, (fn, args, kwargs) in todo:
        if data.is_cached(key, versions):
            continue
        try:
            data.compute_into_cache(key, fn, args, kwargs, url, versions)
            computed += 1
        except Exception:  # noqa: BLE001
            stats["failed"] += 1
            log.warning("warming %s failed", key[0], exc_info=True)
    stats["passes"] += 1
    stats["computed"] += computed
    stats["last_pass_s"] = round(time.perf_counter() - t0, 3)
    return computed
