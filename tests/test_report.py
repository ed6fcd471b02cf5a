"""report and report_command: the training report exists, and renders in a real headless Chromium."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from trader_ml import registry

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def report_path(store) -> Path:
    version = registry.read_latest(store)[0]["version"]
    return store.root / f"reports/v{version}/index.html"


def test_every_run_writes_a_self_contained_report(trained_store):
    page = report_path(trained_store).read_text()
    assert page.count('src="data:image/png;base64,') == 5
    assert not re.search(r"(src|href)=\"https?://", page)  # nothing fetched from the network
    assert (
        "Gate: every check, against the references and the champion" in page
        and "Regime model on its test window" in page
    )
    assert (
        "test_log_loss vs the base rate" in page and "test_f1_macro vs its rule baseline" in page
    )  # every check a row
    for term in ("ece (expected calibration error)", "brier", "f1_macro", "switches_per_year"):
        assert f"<dt>{term}</dt>" in page  # every metric in the tables is explained on the page


def test_report_command_prints_the_path(trained_store):
    result = subprocess.run(
        [sys.executable, "-m", "trader_ml", "report", "--store", trained_store.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == report_path(trained_store)
    missing = subprocess.run(
        [sys.executable, "-m", "trader_ml", "report", "20990101", "--store", trained_store.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "no report for version 20990101" in missing.stderr


class DevTools:
    """Just enough of the Chrome DevTools protocol: commands, and the events seen meanwhile."""

    def __init__(self, url: str) -> None:
        import websocket

        # No Origin header: Chromium refuses DevTools connections from an origin it was not
        # told to allow (--remote-allow-origins), and accepts those that send none.
        self.socket = websocket.create_connection(url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(method)
            self.events.append(json.loads(self.socket.recv()))


def no_browser() -> None:
    """Without Chromium the browser test fails in CI (CI must run it) and is skipped, saying how
    to get it, on a developer's machine."""
    how = "install Debian's chromium package (apt-get install chromium), as .ci/run does"
    if os.environ.get("CI"):
        pytest.fail(f"Chromium is missing, so the report's browser test cannot run: {how}")
    pytest.skip(f"Chromium is not installed here: {how}")


def test_a_missing_browser_fails_in_ci_and_says_how_to_get_it(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install chromium"):
        no_browser()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        no_browser()


def test_report_open_without_a_browser_says_where_the_file_is(trained_store, monkeypatch, capsys):
    import webbrowser

    from trader_ml.cli import main

    monkeypatch.setattr(webbrowser, "open", lambda url: False)
    assert main(["report", "--store", trained_store.url, "--open"]) == 0
    err = capsys.readouterr().err
    assert "no browser could be opened here; open" in err and "index.html yourself" in err


@pytest.fixture
def chromium(tmp_path):
    if CHROMIUM is None:
        no_browser()
    process = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "--window-size=1200,1600",
            "about:blank",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    port = None
    deadline = time.monotonic() + 30
    while port is None and time.monotonic() < deadline:
        line = process.stderr.readline()
        found = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
        port = found and int(found.group(1))
    assert port, "Chromium did not open its DevTools port"
    targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
    page = next(t for t in targets if t["type"] == "page")
    tools = DevTools(page["webSocketDebuggerUrl"])
    yield tools
    tools.socket.close()
    process.kill()
    process.wait(10)


def test_report_renders_in_chromium(trained_store, chromium, tmp_path):
    for domain in ("Page", "Runtime", "Log"):
        chromium.call(f"{domain}.enable")
    chromium.call("Page.navigate", url=report_path(trained_store).as_uri())
    chromium.wait_for("Page.loadEventFired")
    images = chromium.call(
        "Runtime.evaluate",
        expression="JSON.stringify([...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight]))",
        returnByValue=True,
    )["result"]["value"]
    shot = chromium.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    png = base64.b64decode(shot["data"])
    (tmp_path / "report.png").write_bytes(png)
    errors = [
        e
        for e in chromium.events
        if e.get("method") == "Runtime.exceptionThrown"
        or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
    ]
    assert errors == []
    decoded = json.loads(images)
    assert len(decoded) == 5 and all(complete and w > 0 and h > 0 for complete, w, h in decoded)
    assert png.startswith(b"\x89PNG") and len(png) > 20_000


def test_pages_escape_what_they_are_given():
    """Text from a manifest or a summary is escaped wherever the templates put it; the tables'
    cells keep their format (floats to three places, None as -)."""
    from trader_ml.pages.kit import html_figures, html_table, render_template

    table = html_table("<b>title</b>", ["a<b", "c"], {"row <i>": [0.123456, None], "n": [3, "x&y"]})
    assert "<b>title</b>" not in table and "&lt;b&gt;title&lt;/b&gt;" in table
    assert "a&lt;b" in table and "row &lt;i&gt;" in table and "x&amp;y" in table
    assert "<td>0.123</td><td>-</td>" in table and "<td>3</td>" in table
    figures = html_figures([('say "hi"', "data:image/png;base64,AAAA")])
    assert 'alt="say &#34;hi&#34;"' in figures and 'src="data:image/png;base64,AAAA"' in figures
    page = render_template(
        "backtest.html",
        config={"model": "<script>x</script>", "model_type": "gru", "refit": "yearly", "window_days": None,
                "epochs": 1, "seeds": 1, "cost_bp": 10.0},
        data={"source": "a&b", "first_date": "2020-01-01", "last_date": "2020-12-31"},
        refits=1,
        timing={"refits_fitted": 1, "refits_cached": 0, "seconds": 1.0},
        body=table,
    )  # fmt: skip
    assert "<script>x</script>" not in page and "&lt;script&gt;" in page and "a&amp;b" in page
    assert "an expanding window" in page and "<td>0.123</td>" in page  # the body's markup kept as is
