"""``make loadtest``: many users at once against the real server (``streamlit run app.py``), not AppTest.

Two configurations, each driven by N simulated users for 5, 20 and 50 users (``--users``):

* ``1 process``: one ``streamlit run app.py``;
* ``K processes + nginx``: K processes on one database behind nginx with sticky sessions (a
  ``ccm_route`` cookie picks the process and keeps it, websocket upgrade headers passed), the layout
  docs/deployment.md recommends.  nginx comes from Debian's package (the make target installs it).

Each user is a browser tab spoken for by ``bench.st_client`` over HTTP and the app's WebSocket on
127.0.0.1: it loads the page, signs in through the real form (its own account, bcrypt as in
production), then moves between the data pages and changes a filter now and then, with a think time
between clicks.  Per action (open, sign in, page switch, filter change): p50 / p95 / max seconds,
count and errors (a run that does not finish, an exception or the app's error message on screen),
and the server processes' CPU seconds per action.  A table on stdout, ``bench/out/loadtest.md`` and
``loadtest.json``.

    python -m bench.loadtest --db URL [--users 5,20,50] [--processes 2] [--duration 60] [--smoke]

``--smoke``: 2 users, 3 clicks each, one process, the database given (a demo database in CI).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
USER_PREFIX = "loadtest_"
PASSWORD = "loadtest-user-pass-3141"  # bench accounts on bench databases only (like bench.harness's)
DATA_PAGES = ("overview", "enrollment", "minutes", "billing", "revenue")
FILTER_LABEL = "Clinic"
TARGET_P95_S = 1.5  # issue 16: 20 users p95 < 1.5 s per page switch at 50,000 x 36 on PostgreSQL


# --------------------------------------------------------------------------- servers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 120.0) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


@dataclass
class Server:
    """One ``streamlit run app.py`` process."""

    port: int
    proc: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        """user + system CPU of the process (and its children) so far, from /proc."""
        total = 0.0
        for pid in [self.proc.pid, *_children(self.proc.pid)]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except (OSError, IndexError, ValueError):
                pass
        return total


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def start_server(db_url: str, cookie_key: str, workdir: Path, extra_env: dict | None = None) -> Server:
    port = free_port()
    log = workdir / f"streamlit_{port}.log"
    env = {**os.environ, "CCM_DATABASE_URL": db_url, "CCM_COOKIE_KEY": cookie_key, **(extra_env or {})}
    env.pop("CCM_DEMO_MODE", None)
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ROOT / "app.py"),
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    server = Server(port, proc, log)
    try:
        wait_http(server.url + "/_stcore/health")
    except RuntimeError as exc:
        stop(server.proc)
        raise RuntimeError(f"streamlit did not start; see {log}:\n" + log.read_text()[-2000:]) from exc
    return server


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


NGINX_CONF = """\
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    # Sticky sessions by cookie: a first request without ccm_route is hashed on a fresh random id, which
    # becomes its cookie, so every later request (and the websocket) of that browser hashes the same way.
    # (ip_hash would send every user on 127.0.0.1 to one process.)
    map $cookie_ccm_route $ccm_route {{ "" $request_id; default $cookie_ccm_route; }}
    map $http_upgrade $connection_upgrade {{ default upgrade; "" close; }}
    upstream ccm_app {{
        hash $ccm_route consistent;
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://ccm_app;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_read_timeout 86400s;
            proxy_buffering off;
            add_header Set-Cookie "ccm_route=$ccm_route; Path=/; HttpOnly; SameSite=Strict" always;
        }}
    }}
}}
"""


def start_nginx(ports: list[int], workdir: Path) -> tuple[subprocess.Popen, int]:
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError("nginx is not installed (make loadtest installs Debian's package: apt-get install nginx)")
    port = free_port()
    tmp = workdir / "nginx"
    tmp.mkdir(parents=True, exist_ok=True)
    servers = "\n".join(f"        server 127.0.0.1:{p};" for p in ports)
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, servers=servers))
    proc = subprocess.Popen(
        [binary, "-p", str(tmp), "-c", str(conf), "-g", "daemon off;"],
        stdout=(tmp / "stdout.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    wait_http(f"http://127.0.0.1:{port}/_stcore/health", timeout=20)
    return proc, port


# --------------------------------------------------------------------------- accounts
def prepare_database(db_url: str) -> float:
    """As a deployment's ``init-db`` does after an upgrade: migrations, then the stored tables brought up to
    date (a full rebuild when the code that builds them changed); returns the seconds it took."""
    sys.path.insert(0, str(ROOT))
    from ccm_core.storage import db, shared_results
    from ccm_core.storage import stored as pm_store

    t0 = time.perf_counter()
    engine = db.make_engine(db_url)
    db.upgrade(engine)
    if pm_store.ensure_current(engine) is not None:
        pm_store.vacuum(engine)
    shared_results.clear(engine)  # every run starts with no result another run computed
    engine.dispose()
    return time.perf_counter() - t0


def ensure_users(db_url: str, n: int) -> list[str]:
    """``loadtest_01`` ... program-lead accounts with the bench password (created once per database)."""
    sys.path.insert(0, str(ROOT))
    from ccm_core.security import auth
    from ccm_core.storage import db

    engine = db.make_engine(db_url)
    names = [f"{USER_PREFIX}{i:02d}" for i in range(1, n + 1)]
    for name in names:
        if auth.get_user(engine, name) is None:
            auth.add_user(engine, name, PASSWORD, "program_lead", display_name=f"Load test {name[-2:]}")
    engine.dispose()
    return names


# --------------------------------------------------------------------------- one user
@dataclass
class Sample:
    action: str  # open, sign_in, page, filter
    page: str
    seconds: float | None  # None = failed
    error: str | None = None
    at: float = 0.0


@dataclass
class UserPlan:
    actions: int | None = None  # clicks after sign-in (None: for ``duration`` seconds)
    duration: float | None = None  # seconds of clicking, counted from this user's sign-in
    think: tuple[float, float] = (1.0, 3.0)
    filter_every: int = 3
    seed: int = 0
    timeout: float = 120.0


async def simulate_user(base_url: str, username: str, plan: UserPlan, samples: list[Sample]) -> None:
    from bench.st_client import RunFailed, StreamlitClient, click, multiselect_value, text_value

    rng = random.Random(plan.seed)
    client = StreamlitClient(base_url, timeout=plan.timeout)

    def record(action, page, res=None, error=None):
        err = error or (res.errors[0] if res is not None and res.errors else None)
        samples.append(Sample(action, page, None if err else round(res.seconds, 4), err, time.monotonic()))

    try:
        try:
            res = await client.open("/")
        except (RunFailed, OSError) as exc:
            record("open", "sign in", error=f"open: {exc}")
            return
        record("open", "sign in", res)
        await asyncio.sleep(rng.uniform(*plan.think))
        u, p, b = res.find("text_input", "Username"), res.find("text_input", "Password"), res.find("button", "Sign in")
        if not (u and p and b):
            record("sign_in", "overview", error="no sign-in form on the first page")
            return
        try:
            res = await client.rerun(widgets=[text_value(u, username), text_value(p, PASSWORD), click(b)])
        except (RunFailed, OSError) as exc:
            record("sign_in", "overview", error=f"sign in: {exc}")
            return
        if "overview" not in client.pages:
            record("sign_in", "overview", error="sign-in refused: " + "; ".join(res.texts()[:3]))
            return
        record("sign_in", "overview", res)
        deadline = None if plan.duration is None else time.monotonic() + plan.duration
        pages = list(DATA_PAGES)
        current = "overview"
        i = 0
        while (plan.actions is None or i < plan.actions) and (deadline is None or time.monotonic() < deadline):
            await asyncio.sleep(rng.uniform(*plan.think))
            i += 1
            ms = res.find("multiselect", FILTER_LABEL) if plan.filter_every and i % plan.filter_every == 0 else None
            try:
                if ms is not None and len(ms.proto.options) > 0:
                    chosen = (
                        []
                        if list(ms.proto.default) or client_has_filter(client, ms)
                        else [rng.choice(list(ms.proto.options))]
                    )
                    res = await client.rerun(widgets=[multiselect_value(ms, chosen)])
                    record("filter", current, res)
                else:
                    current = rng.choice([p for p in pages if p != current])
                    res = await client.rerun(page=current)
                    record("page", current, res)
            except (RunFailed, OSError) as exc:
                record("filter" if ms is not None else "page", current, error=str(exc))
                return
    finally:
        try:
            await client.close()
        except Exception:  # noqa: BLE001 - closing a broken socket
            pass


def client_has_filter(client, ms) -> bool:
    """Whether this tab has set the clinic filter (then the next filter action clears it again)."""
    w = client.widgets.get(ms.proto.id)
    return bool(w is not None and list(w.string_array_value.data))


async def run_users(base_url: str, usernames: list[str], plan_for) -> tuple[list[Sample], float]:
    samples: list[Sample] = []
    t0 = time.monotonic()
    tasks = []
    for i, name in enumerate(usernames):

        async def one(i=i, name=name):
            await asyncio.sleep(random.Random(i).uniform(0, 2.0))  # users arrive within two seconds
            await simulate_user(base_url, name, plan_for(i), samples)

        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    return samples, time.monotonic() - t0


# --------------------------------------------------------------------------- figures
def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    q = sorted(values)
    return round(q[min(len(q) - 1, int(round(p * (len(q) - 1))))], 3)


def summarize(samples: list[Sample], cpu: float) -> dict:
    out = {}
    actions = ("open", "sign_in", "page", "filter")
    for action in (*actions, "all"):
        rows = [s for s in samples if action == "all" or s.action == action]
        ok = [s.seconds for s in rows if s.seconds is not None]
        out[action] = {
            "n": len(rows),
            "ok": len(ok),
            "errors": len(rows) - len(ok),
            "p50": pct(ok, 0.5),
            "p95": pct(ok, 0.95),
            "max": round(max(ok), 3) if ok else None,
            "mean": round(statistics.mean(ok), 3) if ok else None,
        }
    out["cpu_s"] = round(cpu, 1)
    out["cpu_per_action_s"] = round(cpu / max(1, len(samples)), 3)
    out["error_examples"] = sorted({s.error for s in samples if s.error})[:5]
    return out


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def render(results: list[dict]) -> str:
    lines = [
        "| configuration | users | action | n | errors | p50 s | p95 s | max s |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        for action in ("open", "sign_in", "page", "filter"):
            a = r["summary"][action]
            if not a["n"]:
                continue
            lines.append(
                f"| {r['config']} | {r['users']} | {action} | {a['n']} | {a['errors']} | {_f(a['p50'])} | "
                f"{_f(a['p95'])} | {_f(a['max'])} |"
            )
    lines.append("")
    lines.append(
        "| configuration | users | wall s | actions | server CPU s | CPU s per action | p95 page switch vs "
        f"target {TARGET_P95_S} s |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---|")
    for r in results:
        s = r["summary"]
        p95 = s["page"]["p95"]
        verdict = "-" if p95 is None else ("met" if p95 < TARGET_P95_S and not s["all"]["errors"] else "missed")
        lines.append(
            f"| {r['config']} | {r['users']} | {r['wall_s']:.0f} | {s['all']['n']} | {s['cpu_s']} | "
            f"{s['cpu_per_action_s']} | {verdict} |"
        )
    errs = [(r["config"], r["users"], e) for r in results for e in r["summary"]["error_examples"]]
    if errs:
        lines.append("")
        lines.append("Errors seen (first of each kind):")
        lines += [f"- {c}, {u} users: {e}" for c, u, e in errs]
    return "\n".join(lines)


# --------------------------------------------------------------------------- orchestration
def run_config(
    name: str, base_url: str, servers: list[Server], levels: list[int], users: list[str], args, say
) -> list[dict]:
    results = []
    for n in levels:
        cpu0 = sum(s.cpu_seconds() for s in servers)

        def plan_for(i, n=n):
            return UserPlan(
                actions=args.actions,
                duration=None if args.actions else args.duration,
                think=tuple(args.think),
                seed=1000 * n + i,
                timeout=args.timeout,
            )

        say(f"[{name}] {n} users ...")
        samples, wall = asyncio.run(run_users(base_url, users[:n], plan_for))
        cpu = sum(s.cpu_seconds() for s in servers) - cpu0
        dead = [s.port for s in servers if s.proc.poll() is not None]
        summary = summarize(samples, cpu)
        if dead:
            summary["error_examples"].append(f"server process on port(s) {dead} exited")
        results.append({"config": name, "users": n, "wall_s": round(wall, 1), "summary": summary})
        a = summary["all"]
        say(
            f"[{name}] {n} users: {a['n']} actions, {a['errors']} errors, page p95 {summary['page']['p95']} s, "
            f"CPU {summary['cpu_s']} s"
        )
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.loadtest", description=__doc__.splitlines()[0])
    p.add_argument(
        "--db",
        help="database URL (default: the 50,000 x 36 PostgreSQL bench database, else the "
        "SQLite one; generate them with python -m bench)",
    )
    p.add_argument("--users", default="5,20,50", help="user counts, comma-separated")
    p.add_argument("--processes", type=int, default=2, help="processes behind nginx (0 = skip that configuration)")
    p.add_argument(
        "--single", action=argparse.BooleanOptionalAction, default=True, help="run the 1-process configuration"
    )
    p.add_argument("--duration", type=float, default=60.0, help="seconds each user clicks after signing in")
    p.add_argument("--actions", type=int, default=None, help="clicks per user instead of a duration")
    p.add_argument("--think", type=float, nargs=2, default=(1.0, 3.0), metavar=("MIN", "MAX"))
    p.add_argument("--timeout", type=float, default=120.0, help="seconds before a click counts as failed")
    p.add_argument("--smoke", action="store_true", help="2 users x 3 clicks on one process (CI)")
    p.add_argument(
        "--warm",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the servers' warmer (ui/warm.py) on, as in production (--no-warm to compare)",
    )
    p.add_argument(
        "--shared",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="results shared between processes through the database (ccm_core/storage/shared_results.py; "
        "on PostgreSQL by default, as in production; --no-shared to compare)",
    )
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    if args.smoke:
        args.users, args.processes, args.actions, args.think = "2", 0, 3, (0.05, 0.2)
    levels = [int(x) for x in str(args.users).split(",") if x.strip()]
    db_url = args.db or default_db()

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    say(f"database: {_safe(db_url)}; migrations and stored tables ...")
    say(f"database ready in {prepare_database(db_url):.1f} s; accounts ...")
    users = ensure_users(db_url, max(levels))
    key = secrets.token_urlsafe(48)  # one cookie key for every process, as deployment.md requires
    # the servers' warmer as in production; its list of views in use is kept per run (a fresh file)
    warm_env = {
        "CCM_WARM": "1" if args.warm else "0",
        "CCM_TESTING": "",
        "CCM_WARM_FILE": str(Path(tempfile.gettempdir()) / f"ccm_loadtest_warm_{os.getpid()}.json"),
    }
    if not args.shared:
        warm_env["CCM_SHARED_RESULTS"] = "0"
    results: list[dict] = []
    workdir = Path(tempfile.mkdtemp(prefix="ccm_loadtest_"))
    procs: list[subprocess.Popen] = []
    try:
        if args.single:
            t0 = time.monotonic()
            server = start_server(db_url, key, workdir, warm_env)
            procs.append(server.proc)
            say(f"[1 process] started in {time.monotonic() - t0:.1f} s on port {server.port}")
            results += run_config("1 process", server.url, [server], levels, users, args, say)
            stop(server.proc)
        if args.processes >= 2:
            servers = [start_server(db_url, key, workdir, warm_env) for _ in range(args.processes)]
            procs += [s.proc for s in servers]
            nginx, port = start_nginx([s.port for s in servers], workdir)
            procs.append(nginx)
            name = f"{args.processes} processes + nginx"
            say(f"[{name}] nginx on port {port} -> {', '.join(str(s.port) for s in servers)}")
            results += run_config(name, f"http://127.0.0.1:{port}", servers, levels, users, args, say)
    finally:
        for proc in reversed(procs):
            stop(proc)
        Path(warm_env["CCM_WARM_FILE"]).unlink(missing_ok=True)
    stamp = dt.datetime.now().isoformat(timespec="seconds")
    table = render(results)
    note = (
        f"Load test {stamp}, database {_safe(db_url)}, think {args.think[0]}-{args.think[1]} s, "
        + (f"{args.actions} clicks per user" if args.actions else f"{args.duration:.0f} s per user count")
        + f", warmer {'on' if args.warm else 'off'}, shared results {'on' if args.shared else 'off'}, {os.cpu_count()} CPUs; load average before the run {load_before:.1f}. Client: the app's WebSocket "
        "protocol (bench/st_client.py); JavaScript components do not answer, so a browser's component reruns "
        "are not included."
    )
    (out / "loadtest.json").write_text(
        json.dumps({"at": stamp, "db": _safe(db_url), "args": vars(args), "results": results}, indent=2, default=str)
    )
    (out / "loadtest.md").write_text(f"# Load test\n\n{note}\n\n{table}\n")
    print(note + "\n\n" + table)
    shutil.rmtree(workdir, ignore_errors=True)
    failed = sum(r["summary"]["all"]["errors"] for r in results)
    return 1 if args.smoke and failed else 0


def default_db() -> str:
    from bench import harness
    from ccm_core.storage import db

    pg = os.environ.get("CCM_BENCH_PG_URL", harness.DEFAULT_PG)
    url = db.normalize_url(pg).rsplit("/", 1)[0] + "/ccm_bench_50000x36"  # as harness.pg_url names it
    if harness.generated_marker(url).exists() and harness.pg_server_up(pg) is None:
        return url
    return harness.sqlite_url(50_000, 36)


def _safe(url: str) -> str:
    """The URL without a password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}@{host}"
    return url


if __name__ == "__main__":
    sys.exit(main())
