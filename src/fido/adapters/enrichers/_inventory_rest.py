"""The REST source of the `inventory` enricher: a JSON inventory fetched whole, page by page.

The inventory is fetched with fido's HTTP plumbing (`HttpClient`: TLS verified by
default, retries with back-off, `Retry-After`, the credential kept out of errors), in a
private event loop: on the calling thread (construction, or the reloader's thread), or on
a worker thread when the calling thread runs an event loop already (a notebook, an async
service), so that it works the same everywhere. Each page is a JSON object or list read
like a JSON export (`records_field`); `next_field` names the dotted key of the next
page's URL (absolute, or relative to the first one), if the API pages. A next page is
followed only on the first page's scheme, host and port (the credential goes with each
request: never to another server, never downgraded from https to http); pages beyond
`max_pages` are not read, and the records say so (`truncated`, with a warning).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from typing import Any, Final
from urllib.parse import SplitResult, urljoin, urlsplit

from fido._errors import ConfigurationError
from fido._logging import get_logger
from fido.adapters._http import HttpClient, HttpError
from fido.adapters.enrichers import _inventory_rows as rows

__all__ = ["RestSource"]

log = get_logger("fido.adapters.inventory")

MAX_PAGES: Final = 1000
_PORTS: Final = {"http": 80, "https": 443}


class RestSource:
    """Fetches every page of a JSON inventory.

    Args:
        url: The first page.
        api_key: The credential, sent as `auth_header: auth_scheme api_key` (if any).
        auth_header: The header that carries it (default `Authorization`).
        auth_scheme: Its scheme (default `Bearer`; empty for the bare key).
        records_field: The dotted key of the list of hosts in a page.
        next_field: The dotted key of the next page's URL (None: one page).
        max_pages: Pages read at most (a loop in the links must end).
        verify: Verify TLS certificates (default true).
        ca_file: A CA bundle to verify against.
        proxy: A proxy URL.
        request_timeout: Seconds per request.
    """

    def __init__(
        self,
        *,
        url: str,
        api_key: str | None,
        auth_header: str,
        auth_scheme: str | None,
        records_field: str | None,
        next_field: str | None,
        max_pages: int,
        verify: bool,
        ca_file: str | None,
        proxy: str | None,
        request_timeout: float,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigurationError(f"inventory: url must be an http(s) URL, not {url!r}")
        if not 1 <= max_pages <= MAX_PAGES:
            raise ConfigurationError(f"inventory: max_pages is 1 to {MAX_PAGES}")
        self.url = url
        self.records_field = records_field
        self.next_field = next_field
        self.max_pages = max_pages
        headers = {"accept": "application/json"}
        if api_key:
            headers[auth_header] = f"{auth_scheme} {api_key}" if auth_scheme else api_key
        self._client_options: dict[str, Any] = {
            "base_url": f"{parts.scheme}://{parts.netloc}/",
            "headers": headers,
            "secrets": (api_key,) if api_key else (),
            "timeout": request_timeout,
            "verify": verify,
            "ca_file": ca_file,
            "proxy": proxy,
            "concurrency": 1,
        }
        HttpClient(**self._client_options)  # check the options now (a bad ca_file, ...)
        if not verify and parts.scheme == "https":
            log.warning("inventory: TLS certificate verification is off (verify = false)")

    def __repr__(self) -> str:
        return f"RestSource({self.url!r})"

    def fetch(self) -> rows.Records:
        """Every page's rows, fetched in an event loop of its own.

        On the calling thread, or on a worker thread if this one runs an event loop
        already (`asyncio.run` cannot nest): the caller waits either way.

        Raises:
            OSError: The inventory could not be fetched (the reason, never the key).
            ValueError: A page is not JSON, or holds no list of hosts.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._fetch()
        with concurrent.futures.ThreadPoolExecutor(1, "fido-inventory") as worker:
            return worker.submit(self._fetch).result()

    def _fetch(self) -> rows.Records:
        try:
            return asyncio.run(self._pages())
        except HttpError as exc:
            raise OSError(str(exc)) from None

    async def _pages(self) -> rows.Records:
        client = HttpClient(**self._client_options)
        found: list[Any] = []
        unreadable = 0
        try:
            url: str | None = self.url
            for _ in range(self.max_pages):
                if url is None:
                    break
                body = await client.get_json(url, absent=())
                page = rows.json_records(json.dumps(body), self.records_field)
                found.extend(page.rows)
                unreadable += page.unreadable
                url = self._next(body, url)
        finally:
            await client.aclose()
        if url is not None:
            log.warning(
                "inventory: %s: stopped after max_pages = %d pages with more to read; "
                "the hosts of the pages left are missing (raise max_pages)",
                self.url,
                self.max_pages,
            )
        return rows.Records(found, unreadable, truncated=url is not None)

    def _next(self, body: Any, current: str) -> str | None:
        """The next page's URL, only on the first page's scheme, host and port.

        Raises:
            ValueError: The link leads elsewhere (another server, another port, or
                http where the inventory is https): the credential would go there.
        """
        if self.next_field is None or not isinstance(body, dict):
            return None
        _, link = rows.get(body, self.next_field)
        if not isinstance(link, str) or not link.strip():
            return None
        following = urljoin(current, link.strip())
        try:
            same = _origin(urlsplit(following)) == _origin(urlsplit(self.url))
        except ValueError:  # a port that is not a number
            same = False
        if not same:
            raise ValueError(
                "the next page is not on the inventory's scheme, host and port: not followed"
            )
        return following


def _origin(parts: SplitResult) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL, the port made explicit."""
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _PORTS.get(scheme)
