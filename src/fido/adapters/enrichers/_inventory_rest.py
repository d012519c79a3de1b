"""The REST source of the `inventory` enricher: a JSON inventory fetched whole, page by page.

The inventory is fetched with fido's HTTP plumbing (`HttpClient`: TLS verified by
default, retries with back-off, `Retry-After`, the credential kept out of errors), in a
private event loop on the calling thread (construction, or the reloader's thread), so
that it works the same from a script, a service and a notebook. Each page is a JSON
object or list read like a JSON export (`records_field`); `next_field` names the dotted
key of the next page's URL (absolute, or relative to the first one), if the API pages.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

from fido._errors import ConfigurationError
from fido.adapters._http import HttpClient, HttpError
from fido.adapters.enrichers import _inventory_rows as rows

__all__ = ["RestSource"]

MAX_PAGES: Final = 1000


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

    def __repr__(self) -> str:
        return f"RestSource({self.url!r})"

    def fetch(self) -> rows.Records:
        """Every page's rows (runs its own event loop: call it from a plain thread).

        Raises:
            OSError: The inventory could not be fetched (the reason, never the key).
            ValueError: A page is not JSON, or holds no list of hosts.
        """
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
        return rows.Records(found, unreadable)

    def _next(self, body: Any, current: str) -> str | None:
        if self.next_field is None or not isinstance(body, dict):
            return None
        _, link = rows.get(body, self.next_field)
        if not isinstance(link, str) or not link.strip():
            return None
        following = urljoin(current, link)
        if urlsplit(following).netloc != urlsplit(self.url).netloc:
            raise ValueError("the next page is on another server: not followed")
        return following
