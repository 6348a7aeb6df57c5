"""The documentation site: it builds without a single warning, documents every public name,
and renders in a real browser without errors.

The build itself is the session fixture ``docs_site`` (conftest.py), shared with the
tutorials' tests, which it also runs.
"""

import base64
import contextlib
import functools
import http.server
import importlib
import inspect
import json
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
PAGES = ("index.html", "gallery.html", "tutorials/02_quickstart.html")
"""The pages the browser opens: the home page, the gallery and a tutorial with figures."""


def test_build_has_no_warnings(docs_site):
    assert docs_site.returncode == 0 and not docs_site.problems(), (
        "\n".join(docs_site.problems()) or docs_site.log[-5000:]
    )


def test_getting_started_gives_the_readme_commands():
    """The site's set-up commands are the README's, verbatim (one is a copy of the other)."""

    def commands(path: Path) -> list[str]:
        return re.findall(r"^python3 -m venv .*$", path.read_text(), flags=re.M)

    readme = commands(ROOT / "README.md")
    assert len(readme) == 2, readme
    assert commands(ROOT / "docs" / "getting-started.md") == readme


def _public_modules() -> list[str]:
    """Every module of the three packages, found without the docs' own code."""
    names = []
    for package, folder in (("pyrocrl", "pyrocrl"), ("pyrocrl.models", "models")):
        names += _walk(package, ROOT / folder)
    return [*names, *_walk("pyrocrl.inference", ROOT / "inference")]


def _walk(package: str, folder: Path) -> list[str]:
    names = [package]
    for path in sorted(folder.iterdir()):
        if path.name.startswith("_") or path.name in ("models", "inference"):
            continue
        if path.suffix == ".py":
            names.append(f"{package}.{path.stem}")
        elif (path / "__init__.py").exists():
            names += _walk(f"{package}.{path.name}", path)
    return names


def test_every_public_name_has_an_entry(docs_site):
    """Each name in each module's ``__all__`` has a reference entry: under its own module,
    or (a re-export) under the module that defines it; a name bound to another library's
    object is listed on its module's page."""
    ids = set()
    for page in (docs_site.html / "api").glob("*.html"):
        ids.update(re.findall(r'id="(pyrocrl[\w.]*)"', page.read_text()))
    modules = {name: importlib.import_module(name) for name in _public_modules()}
    missing = []
    for name, module in modules.items():
        page = docs_site.html / "api" / f"{name}.html"
        if not page.exists():
            missing.append(f"{name} (no page)")
            continue
        text = page.read_text()
        for public in module.__all__:
            obj = getattr(module, public)
            home = getattr(obj, "__module__", None) or ""
            if inspect.ismodule(obj) or (home and not home.startswith("pyrocrl")):
                found = f'<span class="pre">{public}</span>' in text  # listed as bound
            else:  # an entry here, or where the same object is defined
                found = (
                    any(
                        getattr(other, public, None) is obj and f"{where}.{public}" in ids
                        for where, other in modules.items()
                    )
                    or f"{home}.{getattr(obj, '__qualname__', public)}" in ids
                )
            if not found:
                missing.append(f"{name}.{public}")
    assert not missing, missing


# -- the site in a browser ---------------------------------------------------------------------
@contextlib.contextmanager
def _serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on localhost in a thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _chromium(profile: Path) -> Iterator[str]:
    """Headless Chromium with the DevTools protocol on a free port; yields the websocket
    URL of its first page."""
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1280,900",
        f"--user-data-dir={profile}",
        "--remote-debugging-port=0",
        "about:blank",
    ]
    browser = subprocess.Popen(
        [str(CHROMIUM), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"  # Chromium writes its port here
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if browser.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Chromium did not start (exit status {browser.poll()})")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            targets = json.load(r)
        yield next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
    finally:
        browser.terminate()
        try:
            browser.wait(timeout=10)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait()


class _DevTools:
    """A minimal client of the Chrome DevTools protocol: commands and the events seen."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.events: list[dict[str, Any]] = []
        self._id = 0

    def call(self, method: str, timeout: float = 30, **params: Any) -> dict[str, Any]:
        self._id += 1
        self.socket.send(json.dumps({"id": self._id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.socket.recv(timeout=max(deadline - time.monotonic(), 0)))
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, event: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            message = self.socket.recv(timeout=max(deadline - time.monotonic(), 0))
            self.events.append(json.loads(message))

    def drain(self, seconds: float) -> None:
        """Collect the events of the next ``seconds`` (late scripts, images)."""
        deadline = time.monotonic() + seconds
        with contextlib.suppress(TimeoutError):
            while (left := deadline - time.monotonic()) > 0:
                self.events.append(json.loads(self.socket.recv(timeout=left)))

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads seen so far."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                found.append(" ".join(str(a.get("value", a)) for a in params["args"]))
            elif method == "Runtime.exceptionThrown":
                found.append(params["exceptionDetails"].get("text", str(params)))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                entry = params["entry"]
                if not _offline(entry):
                    found.append(f"{entry['text']} {entry.get('url', '')}".strip())
        return found


OFFLINE = ("net::ERR_NAME_NOT_RESOLVED", "net::ERR_INTERNET_DISCONNECTED")
"""How Chromium reports a request that could not leave a machine without a network."""


def _offline(entry: dict[str, Any]) -> bool:
    """Whether a failed load is one of another site (MathJax from its CDN) that this
    machine cannot reach: a fact about the machine, not about the site; every request to
    the served site itself must succeed."""
    url = entry.get("url", "")
    local = url.startswith(("http://127.0.0.1", "http://localhost"))
    return not local and any(code in entry.get("text", "") for code in OFFLINE)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: apt-get install chromium")
def test_site_in_browser(docs_site, tmp_path):
    """The home page, the gallery and a tutorial page load in headless Chromium with no
    console error, no uncaught exception and no failed request to the site (only another
    site that an offline machine cannot reach is excused: MathJax's CDN), every image
    decoded; a screenshot of each is kept in the test's folder."""
    from websockets.sync.client import connect

    assert docs_site.returncode == 0, docs_site.log[-3000:]
    profile = tmp_path / "profile"
    profile.mkdir()
    with _serve(docs_site.html) as base, _chromium(profile) as url:
        with connect(url, max_size=2**26, open_timeout=30) as socket:
            tools = _DevTools(socket)
            for domain in ("Page", "Runtime", "Log"):
                tools.call(f"{domain}.enable")
            for page in PAGES:
                tools.events.clear()
                tools.call("Page.navigate", url=base + page)
                tools.wait_for("Page.loadEventFired")
                tools.drain(1.0)
                assert not tools.errors(), f"{page}: {tools.errors()}"
                state = tools.call(
                    "Runtime.evaluate",
                    expression="JSON.stringify({title: document.title, images: "
                    "[...document.images].map(i => i.complete && i.naturalWidth > 0)})",
                    returnByValue=True,
                )
                found = json.loads(state["result"]["value"])
                assert "pyrocrl" in found["title"], found
                assert all(found["images"]), f"{page}: an image did not load"
                shot = tools.call("Page.captureScreenshot", format="png")
                png = base64.b64decode(shot["data"])
                target = tmp_path / (page.replace("/", "_").removesuffix(".html") + ".png")
                target.write_bytes(png)
                assert png.startswith(b"\x89PNG") and len(png) > 10_000, target
    shutil.rmtree(profile, ignore_errors=True)
