"""The benchmark's ``app`` stage: AppTest renders of every page and tab (cold, warm, filter change) and N
simultaneous sessions, at the size ``python -m bench`` generated.

It drives Streamlit, so it lives outside the core (the runtime packages never hold benchmark code);
``bench.harness`` runs it in a child process (``python -m bench.app_stage --stage app --params JSON``) so its peak memory is the app's own.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time

from bench.harness import BENCH_COOKIE_KEY, BENCH_USER, RESULT_TAG, ROOT, ensure_bench_user, peak_mb, summarize_times

APP_PAGES = ("overview", "enrollment", "minutes", "billing", "revenue", "audit", "import", "admin")
# Every other tab of each page (a page computes only its open tab); the page row is its default tab.
PAGE_TABS = {
    "enrollment": (
        "enrollment_tab",
        ("Declines & disenrollments", "Consent completeness", "Retention", "Outreach list"),
    ),
    "minutes": ("minutes_tab", ("Worklist", "Holds", "Care managers", "Time flags")),
    "billing": (
        "billing_tab",
        ("Ready to bill", "Holds", "Findings & conflicts", "Denial trend", "Denial reasons", "Claim lines"),
    ),
    "revenue": ("revenue_tab", ("Leakage", "Projection")),
    "audit": ("audit_tab", ("Samples & trend", "Month checklist")),
}


def _signed_in_app(username: str = BENCH_USER[0]):
    """An AppTest session already signed in (as the cookie re-login would leave it)."""
    from streamlit.testing.v1 import AppTest

    from ccm_core.security import auth
    from ccm_core.storage import db
    from ui.session import SESSION_ID_KEY

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.session_state["authentication_status"] = True
    at.session_state["username"] = username
    # every run checks a live sign-in session row (ccm_core.security.auth): one per simulated session, as a sign-in makes
    engine = db.make_engine(os.environ["CCM_DATABASE_URL"])
    at.session_state[SESSION_ID_KEY] = auth.create_session(engine, username)[0]
    engine.dispose()
    return at


@contextlib.contextmanager
def shared_runtime():
    """Let AppTest sessions overlap in threads, as sessions do in one Streamlit server.

    AppTest installs a mock ``Runtime`` for each run and sets it back to None at the end, which
    breaks any other session still running.  Here one mock stays available while sessions overlap
    (a harness shim: the app code under test is untouched).
    """
    from unittest.mock import MagicMock

    from streamlit.runtime import Runtime
    from streamlit.runtime.caching.storage.dummy_cache_storage import MemoryCacheStorageManager

    fallback = MagicMock(spec=Runtime)
    fallback.cache_storage_manager = MemoryCacheStorageManager()
    orig_instance, orig_exists = Runtime.__dict__["instance"], Runtime.__dict__["exists"]
    Runtime.instance = classmethod(lambda cls: cls._instance or fallback)
    Runtime.exists = classmethod(lambda cls: True)
    try:
        yield
    finally:
        Runtime.instance, Runtime.exists = orig_instance, orig_exists


def _open(at, page_key: str):
    from ccm_core.security import auth

    return at.switch_page(auth.PAGES[page_key][1])


def _render(at) -> tuple[float, str | None]:
    t0 = time.perf_counter()
    at.run()
    took = time.perf_counter() - t0
    err = None
    if at.exception:
        err = str(at.exception[0].message)[:200]
    return took, err


def _clear_data_cache() -> None:
    from ui import cache as data

    data.clear_cache()


def stage_app(url: str, sessions: int) -> dict:
    """Page renders through AppTest in this (app-like) process; caches are process-wide as in a server."""
    ensure_bench_user(url)
    os.environ["CCM_DATABASE_URL"] = url
    os.environ["CCM_COOKIE_KEY"] = BENCH_COOKIE_KEY
    os.environ["CCM_WARM"] = "0"  # the stage times computations; the warmer (ui/warm.py) would do them first
    os.environ.pop("CCM_DEMO_MODE", None)
    from ccm_core.storage import db, shared_results

    engine = db.make_engine(url)
    shared_results.clear(engine)  # cold means cold: no copy another run left in the database either
    engine.dispose()
    out: dict = {"pages": {}}
    # Overview: cold (empty cache), warm (new session, same filters), filter change (cached / new filters).
    _clear_data_cache()
    at = _signed_in_app()
    cold, err = _render(at)
    warm_at = _signed_in_app()
    warm, err2 = _render(warm_at)
    ms = at.sidebar.multiselect
    payer = next((w for w in ms if w.label == "Payer"), None)
    filt = {}
    if payer is not None and payer.options:
        first = payer.options[0]
        t0 = time.perf_counter()
        payer.set_value([first]).run()  # a filter set nobody viewed yet: computes
        filt["new_filter"] = round(time.perf_counter() - t0, 3)
        payer = next(w for w in at.sidebar.multiselect if w.label == "Payer")
        t0 = time.perf_counter()
        payer.set_value([]).run()  # back to a filter set in the cache
        filt["cached_filter"] = round(time.perf_counter() - t0, 3)
        payer = next(w for w in at.sidebar.multiselect if w.label == "Payer")
        t0 = time.perf_counter()
        payer.set_value([first]).run()  # and again: now both are cached
        filt["cached_filter_2"] = round(time.perf_counter() - t0, 3)
    out["overview"] = {"cold": round(cold, 3), "warm": round(warm, 3), **filt, "error": err or err2}
    # Every page cold (data cache cleared before each), then warm; the Audit page's other tabs too
    # (each computes only when opened).
    tabs = [(k, None) for k in APP_PAGES] + [(k, t) for k, (_, ts) in PAGE_TABS.items() for t in ts]
    for key, tab in tabs:
        at = _signed_in_app()
        at.run()  # sign-in run (lands on the Overview); then empty the cache so the page below is cold
        _clear_data_cache()
        if tab:
            at.session_state[PAGE_TABS[key][0]] = tab
        _open(at, key)
        c, e = _render(at)
        w, e2 = _render(at)
        name = f"{key}: {tab.lower()} tab" if tab else key
        out["pages"][name] = {"cold": round(c, 3), "warm": round(w, 3), "error": e or e2}
    # N concurrent sessions on the Overview with a warm cache.
    if sessions:
        _signed_in_app().run()  # warm the Overview's cache, as a running server would have it
        out["concurrency"] = run_sessions(sessions)
    out["peak_mb"] = peak_mb()
    return out


def run_sessions(n: int, page: str = "overview", username: str = BENCH_USER[0]) -> dict:
    """``n`` AppTest sessions in threads, each signed in and rendering ``page``; p50/p95 and errors."""
    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(n)

    def one():
        try:
            at = _signed_in_app(username)
            barrier.wait(timeout=60)
            took, err = _render(at)
            if page != "overview":
                _open(at, page)
                took, err = _render(at)
            with lock:
                times.append(took)
                if err:
                    errors.append(err)
        except Exception as exc:  # noqa: BLE001
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])

    threads = [threading.Thread(target=one) for _ in range(n)]
    with shared_runtime():
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
    return summarize_times(times, errors, wall)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.app_stage", description=__doc__.splitlines()[0])
    p.add_argument("--stage", default="app", choices=["app"])
    p.add_argument("--params", required=True, help="JSON: url, sessions")
    params = json.loads(p.parse_args(argv).params)
    res = stage_app(params["url"], params["sessions"])
    print(RESULT_TAG + json.dumps(res, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
