"""A Streamlit client without a browser: the app's own WebSocket protocol, as the browser speaks it.

What a browser does for a user, minus drawing: load the page over HTTP (keeping the cookies a proxy
sets, so sticky sessions stick), open ``/_stcore/stream``, send a ``rerun_script`` BackMsg for every
click (the page to show, the query string, the widget values) and read the ForwardMsgs until the run
ends (``script_finished``).  The time from the click to the end of the run is what a user waits for
the server; the browser's own drawing is not included (it happens on the user's machine).

Not emulated: JavaScript components (the login cookie manager) never answer, so the extra rerun a
component's value triggers in a browser does not happen here.  The load test says so in its output.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import time
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

FINISHED = ForwardMsg.ScriptFinishedStatus
# st.error texts the app shows instead of a traceback (ui.components.friendly_errors): an error for a user.
ERROR_MARKERS = ("Something went wrong", "database error", "could not be reached", "Could not show")


class RunFailed(RuntimeError):
    """The server did not finish the run (timeout, closed connection, compile error)."""


@dataclass
class Element:
    kind: str  # the Element oneof name: "button", "text_input", "multiselect", "alert", "exception", ...
    proto: object  # the element's own message (e.g. a Button)
    path: tuple[int, ...]


@dataclass
class RunResult:
    seconds: float
    elements: list[Element]
    reruns: int  # runs the server started for this click (a st.rerun() inside counts one more)
    errors: list[str] = field(default_factory=list)

    def find(self, kind: str, label: str | None = None) -> Element | None:
        for e in self.elements:
            if e.kind == kind and (label is None or getattr(e.proto, "label", None) == label):
                return e
        return None

    def texts(self) -> list[str]:
        out = []
        for e in self.elements:
            for attr in ("body", "label", "message"):
                v = getattr(e.proto, attr, None)
                if isinstance(v, str) and v:
                    out.append(v)
        return out


class StreamlitClient:
    """One simulated browser tab.  ``await open()``, then ``rerun(...)`` per click; ``close()`` at the end."""

    def __init__(self, base_url: str, timeout: float = 120.0):
        self.base = base_url.rstrip("/")
        self.timeout = timeout
        self.cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))
        self._ws = None
        self._reader: asyncio.Task | None = None
        self._queue: asyncio.Queue = asyncio.Queue()
        self.pages: dict[str, str] = {}  # url path -> page script hash (from the navigation message)
        self.page_hash = ""
        self.query_string = ""
        self.widgets: dict[str, WidgetState] = {}  # the values this tab has set, sent with every rerun
        self.session_id = ""

    # ------------------------------------------------------------------ transport
    def _get(self, path: str) -> int:
        with self._opener.open(self.base + path, timeout=self.timeout) as resp:
            resp.read()
            return resp.status

    async def open(self, path: str = "/", query: str = "") -> RunResult:
        """Load the page as a browser does (HTML, health and host config over HTTP, then the socket) and
        wait for the first run: what a user waits for between Enter in the address bar and a page."""
        t0 = time.perf_counter()
        self.query_string = query
        for p in (path + (f"?{query}" if query else ""), "/_stcore/health", "/_stcore/host-config"):
            status = await asyncio.to_thread(self._get, p)
            if status != 200:
                raise RunFailed(f"GET {p}: HTTP {status}")
        u = urlsplit(self.base)
        scheme = "wss" if u.scheme == "https" else "ws"
        req = urllib.request.Request(self.base + "/_stcore/stream")
        self.cookies.add_cookie_header(req)
        headers = {"Cookie": req.get_header("Cookie")} if req.has_header("Cookie") else {}
        self._ws = await websockets.connect(
            f"{scheme}://{u.netloc}/_stcore/stream",
            subprotocols=["streamlit"],
            additional_headers=headers,
            max_size=None,
            open_timeout=self.timeout,
            ping_interval=None,
        )
        self._reader = asyncio.create_task(self._read())
        self.page_name = path.strip("/")
        res = await self.rerun(page_name=self.page_name)
        res.seconds = time.perf_counter() - t0
        return res

    async def _read(self) -> None:
        try:
            async for data in self._ws:
                msg = ForwardMsg()
                msg.ParseFromString(data)
                await self._queue.put(msg)
        except websockets.ConnectionClosed:
            pass
        finally:
            await self._queue.put(None)

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            try:
                await asyncio.wait_for(self._reader, 5)
            except (TimeoutError, asyncio.CancelledError):
                self._reader.cancel()

    # ------------------------------------------------------------------ one click
    async def rerun(
        self, *, page: str | None = None, page_name: str = "", widgets: list[WidgetState] = ()
    ) -> RunResult:
        """Send a click (new widget values, or another page) and wait until the server has finished
        every run it starts for it."""
        for w in widgets:
            self.widgets[w.id] = w
        if page is not None:
            if page not in self.pages:
                raise RunFailed(f"no page {page!r} in the navigation ({', '.join(self.pages)})")
            self.page_hash, page_name = self.pages[page], ""
        back = BackMsg()
        cs = back.rerun_script
        cs.query_string = self.query_string
        cs.page_script_hash = self.page_hash
        cs.page_name = page_name
        cs.widget_states.widgets.extend(self.widgets.values())
        t0 = time.perf_counter()
        await self._ws.send(back.SerializeToString())
        # triggers (button clicks) fire once: the browser does not send them again
        self.widgets = {k: w for k, w in self.widgets.items() if w.WhichOneof("value") != "trigger_value"}
        return await self._collect(t0)

    async def _collect(self, t0: float) -> RunResult:
        elements: dict[tuple[int, ...], Element] = {}
        errors: list[str] = []
        runs = 0
        deadline = t0 + self.timeout
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise RunFailed(f"no end of run within {self.timeout:.0f} s")
            try:
                msg = await asyncio.wait_for(self._queue.get(), left)
            except TimeoutError:
                raise RunFailed(f"no end of run within {self.timeout:.0f} s") from None
            if msg is None:
                raise RunFailed("the server closed the connection")
            kind = msg.WhichOneof("type")
            if kind == "new_session":
                runs += 1
                elements.clear()
                ns = msg.new_session
                self.session_id = ns.initialize.session_id or self.session_id
                if ns.page_script_hash:
                    self.page_hash = ns.page_script_hash
            elif kind == "navigation":
                for p in msg.navigation.app_pages:
                    self.pages[p.url_pathname or p.page_name.lower()] = p.page_script_hash
                if msg.navigation.page_script_hash:
                    self.page_hash = msg.navigation.page_script_hash
            elif kind == "page_info_changed":
                self.query_string = msg.page_info_changed.query_string
            elif kind == "delta":
                d = msg.delta
                path = tuple(msg.metadata.delta_path)
                if d.WhichOneof("type") == "new_element":
                    el = d.new_element
                    ek = el.WhichOneof("type")
                    e = Element(ek, getattr(el, ek), path)
                    elements[path] = e
                    if ek == "exception":
                        errors.append(f"exception: {e.proto.type}: {e.proto.message[:200]}")
                    elif ek == "alert" and e.proto.format == 1 and any(m in e.proto.body for m in ERROR_MARKERS):
                        errors.append(f"error shown: {e.proto.body[:200]}")
            elif kind == "script_finished":
                status = msg.script_finished
                if status == FINISHED.FINISHED_WITH_COMPILE_ERROR:
                    raise RunFailed("the script did not compile")
                if status in (FINISHED.FINISHED_SUCCESSFULLY, FINISHED.FINISHED_FRAGMENT_RUN_SUCCESSFULLY):
                    ordered = [elements[k] for k in sorted(elements)]
                    return RunResult(time.perf_counter() - t0, ordered, runs, errors)
                # FINISHED_EARLY_FOR_RERUN: the server starts the next run itself; keep reading


# ---------------------------------------------------------------------- widget values
def text_value(element: Element, value: str) -> WidgetState:
    w = WidgetState(id=element.proto.id)
    w.string_value = value
    return w


def click(element: Element) -> WidgetState:
    w = WidgetState(id=element.proto.id)
    w.trigger_value = True
    return w


def multiselect_value(element: Element, chosen: list[str]) -> WidgetState:
    """``chosen``: the options as the widget shows them (its formatted labels)."""
    w = WidgetState(id=element.proto.id)
    w.string_array_value.data.extend(chosen)
    return w
