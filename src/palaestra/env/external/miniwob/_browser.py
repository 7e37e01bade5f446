"""One headless Chromium driven by Playwright on a thread of its own.

Playwright's sync API is bound to the thread that started it and refuses to
run inside an asyncio loop; the rollout engine calls environments from its
event loop or from a thread pool. So every browser call is marshalled to one
dedicated worker thread (a single-thread executor), which also gives each
call a wall-clock limit: a hung page or a dead browser becomes an
:class:`EnvError` instead of a hang.

The browser is Debian's ``/usr/bin/chromium`` (Playwright's own browser
download is not used); ``PALAESTRA_CHROMIUM`` or the ``executable`` argument
name another Chromium build.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from palaestra.env._core import EnvError

_T = TypeVar("_T")

DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
INSTALL_HINT = (
    'pip install "palaestra[miniwob]" and a Chromium binary (Debian: apt-get install -y chromium; '
    "never `playwright install`)"
)


def find_chromium(executable: str | None = None) -> str:
    """The Chromium binary to drive: the argument, ``$PALAESTRA_CHROMIUM``, or Debian's."""
    path = executable or os.environ.get("PALAESTRA_CHROMIUM") or DEFAULT_CHROMIUM
    found = shutil.which(path)
    if found is None:
        raise ImportError(
            f"MiniWoB++ environments need a Chromium binary; {path!r} was not found. "
            f"Install it ({INSTALL_HINT}) or set PALAESTRA_CHROMIUM to its path."
        )
    return found


class Browser:
    """A lazily launched headless Chromium with one page per name, used from any thread."""

    def __init__(self, executable: str, *, viewport: tuple[int, int] = (500, 400)) -> None:
        self.executable = executable
        self.viewport = viewport
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pw: Any = None
        self._browser: Any = None
        self._pages: dict[str, Any] = {}
        self.broken: str | None = None

    # ---- running code on the browser thread ------------------------------------

    def call(self, fn: Callable[[], _T], *, timeout: float = 30.0) -> _T:
        """Run ``fn`` on the browser thread; browser death or a hang raises :class:`EnvError`."""
        if self.broken is not None:
            raise EnvError(f"the MiniWoB++ browser is unusable: {self.broken}")
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(1, "palaestra-miniwob")
        future = self._pool.submit(fn)
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            self.broken = f"a browser call did not return within {timeout:.0f} s"
            raise EnvError(f"the MiniWoB++ browser hung ({self.broken})") from None

    def page(self, name: str, url: str) -> Any:
        """The page called ``name`` showing ``url`` (browser thread only)."""
        browser = self._browser if self._browser is not None else self._launch()
        page = self._pages.get(name)
        if page is None or page.is_closed():
            page = browser.new_page(
                viewport={"width": self.viewport[0], "height": self.viewport[1]}
            )
            page.set_default_timeout(5_000)
            page.goto(url)
            self._pages[name] = page
        return page

    def alive(self) -> bool:
        """Whether the browser process still answers (browser thread only)."""
        return self._browser is not None and bool(self._browser.is_connected())

    def _launch(self) -> Any:
        from playwright.sync_api import sync_playwright

        if not Path(self.executable).exists():
            raise EnvError(f"Chromium binary {self.executable!r} disappeared")
        self._pw = sync_playwright().start()
        try:
            self._browser = self._pw.chromium.launch(
                executable_path=self.executable, headless=True, args=CHROMIUM_ARGS
            )
        except Exception as e:
            self._pw.stop()
            self._pw = None
            raise EnvError(f"could not launch Chromium {self.executable!r}: {e}") from e
        return self._browser

    # ---- shutdown -------------------------------------------------------------

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if self.broken is None:

            def shutdown() -> None:
                with contextlib.suppress(Exception):
                    if self._browser is not None:
                        self._browser.close()
                with contextlib.suppress(Exception):
                    if self._pw is not None:
                        self._pw.stop()

            with contextlib.suppress(Exception):
                pool.submit(shutdown).result(timeout=15)
        self._browser = self._pw = None
        self._pages = {}
        pool.shutdown(wait=False, cancel_futures=True)
