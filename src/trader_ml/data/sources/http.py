"""HTTP GET for the live sources: a browser-like User-Agent, a timeout, retries with backoff."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable

from trader_ml.errors import SourceError

Getter = Callable[[str], bytes]  # url -> body; tests pass recorded responses instead

USER_AGENT = "Mozilla/5.0 (compatible; trader-ml)"
RETRY_STATUSES = {429, 500, 502, 503, 504}


def http_get(url: str, attempts: int = 4, timeout: float = 30.0, backoff: float = 1.0) -> bytes:
    """Body of ``url``; retries throttling, 5xx and network errors, then one clear error."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.read()
        except urllib.error.HTTPError as e:
            if e.code not in RETRY_STATUSES or attempt == attempts - 1:
                raise SourceError(f"GET {url} failed: HTTP {e.code} {e.reason}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            if attempt == attempts - 1:
                reason = getattr(e, "reason", e)
                raise SourceError(f"GET {url} failed: {reason}") from None
        time.sleep(backoff * 2**attempt)
    raise AssertionError("unreachable")
