"""One HTTP helper for the JSON APIs finops reads (OpenAI and Anthropic organization usage).

:class:`JsonApi` does what every paged REST API needs, once:

* **Auth from the environment only.** The key is read from the environment variable the user
  named (``--api-key-env VAR``) and put in a header; it is never an argument, and never part of
  a message: every error text goes through :meth:`JsonApi.redact`, which also masks anything
  shaped like a provider key (``sk-…``) that a server might echo back.
* **Paging.** :meth:`JsonApi.pages` follows ``has_more`` / ``next_page``, sending the cursor
  back as the ``page`` query parameter, and yields each page's raw text with its number, so
  the caller can parse it in SQL and name the page in errors.
* **Retries.** 429 and 5xx answers, timeouts and dropped connections are retried with
  exponential backoff (0.5 s, 1 s, 2 s, …) that waits what ``Retry-After`` says when the server
  says it (seconds or an HTTP date). One wait is capped at ``max_wait`` seconds and all waits
  of one call at ``max_total_wait``: past that the call fails with the last answer.
* **Clear errors.** A 401/403 says the key in ``$VAR`` was refused; a timeout, a 4xx, a body
  that is not JSON, or JSON without the fields a page has, each raise
  :class:`~finops.exceptions.SourceError` naming the API, the path and the page number.
  Unknown fields are not an error: callers select the fields they use.

Whose fault (as in ``finops.exceptions``): 401/403 the key's, other 4xx our request's or the
user's window, 429/5xx/timeouts the server's (retried), malformed JSON the server's.
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import httpx

from finops.exceptions import SourceError

ProgressCallback = Callable[[str, int, int], None]
"""progress(description, completed, total): called as pages are fetched (total: pages known so far)."""

QueryValue = str | int | Sequence[str]

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 520, 522, 524, 529})
"""Answers worth another try: rate limited, or the server (or its proxy) failed or was overloaded."""

_KEY_SHAPES = re.compile(r"\b(sk-[A-Za-z0-9_\-*]{6,}|sk-ant-[A-Za-z0-9_\-*]{6,})")


def read_api_key(env_var: str, *, source: str) -> str:
    """The API key in environment variable ``env_var``; a clear error when it is unset or empty."""
    if not env_var or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", env_var):
        raise SourceError(
            f"{source}: --api-key-env needs the NAME of an environment variable, not a key",
            hint="export OPENAI_ADMIN_KEY=… and pass --api-key-env OPENAI_ADMIN_KEY",
        )
    key = os.environ.get(env_var, "").strip()
    if not key:
        raise SourceError(
            f"{source}: environment variable ${env_var} is not set or empty",
            hint=f"export {env_var}=<an admin API key of the organization>",
        )
    return key


@dataclasses.dataclass(frozen=True)
class Page:
    """One page of a paged answer, as received: its text is parsed later, in SQL."""

    path: str  # /v1/organization/usage/completions
    number: int  # 1-based
    text: str  # the JSON body, as the server sent it

    @property
    def key(self) -> str:
        """How rows and errors name the page: ``GET /v1/organization/costs page 2``."""
        return f"GET {self.path} page {self.number}"


@dataclasses.dataclass
class JsonApi:
    """A JSON REST API at ``base_url``, authenticated by a key from ``$key_env``.

    ``auth_headers`` turns the key into headers (``{"Authorization": "Bearer …"}``).
    ``source`` names the API in messages ("OpenAI Usage API").
    """

    source: str
    base_url: str
    key_env: str
    auth_headers: Callable[[str], Mapping[str, str]]
    timeout: float = 60.0
    max_attempts: int = 6
    max_wait: float = 60.0
    max_total_wait: float = 300.0
    transport: httpx.BaseTransport | None = None
    sleep: Callable[[float], None] = time.sleep
    waited: float = 0.0  # seconds spent waiting between retries, over the client's life
    retries: int = 0  # how many answers were retried

    def __post_init__(self) -> None:
        self._key = read_api_key(self.key_env, source=self.source)
        self.base_url = self.base_url.rstrip("/")

    # -- secrets -----------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        """``text`` with the key, and anything shaped like a provider key, replaced by ``***``."""
        if self._key:
            text = text.replace(self._key, "***")
        return _KEY_SHAPES.sub("***", text)

    # -- requests ----------------------------------------------------------------------------

    def pages(
        self,
        path: str,
        params: Mapping[str, QueryValue],
        *,
        progress: ProgressCallback | None = None,
        label: str | None = None,
    ) -> Iterator[Page]:
        """GET ``path`` with ``params``, then every next page (``page=<next_page>``) while ``has_more``."""
        report = progress or (lambda *_: None)
        cursor: str | None = None
        number = 0
        seen: set[str] = set()
        with self._client() as client:
            while True:
                number += 1
                report(f"{label or self.source}: page {number}", number - 1, number)
                query = dict(params)
                if cursor is not None:
                    query["page"] = cursor
                text = self._get(client, path, query, number)
                body = self._parse(text, path, number)
                yield Page(path, number, text)
                if not body.get("has_more"):
                    return
                cursor = body.get("next_page")
                if not isinstance(cursor, str) or not cursor:
                    raise SourceError(
                        f"{self.source}: GET {path} page {number} says has_more but gives no next_page",
                        hint="the API answered an unexpected shape; retry later, or report it with this message",
                    )
                if cursor in seen:
                    raise SourceError(
                        f"{self.source}: GET {path} page {number} gives a next_page it gave before (a paging loop)",
                        hint="retry later; if it persists, load a shorter window with --start/--end",
                    )
                seen.add(cursor)

    def _client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            headers={"Accept": "application/json", "User-Agent": "ai-finops-workbench", **self.auth_headers(self._key)},
            timeout=self.timeout,
            transport=self.transport,
            follow_redirects=False,
        )

    def _get(self, client: httpx.Client, path: str, query: Mapping[str, QueryValue], number: int) -> str:
        where = f"{self.source}: GET {path} page {number}"
        attempt = 0
        waited_here = 0.0
        while True:
            attempt += 1
            failure: str
            retry_after: float | None = None
            try:
                response = client.get(path, params=_query(query))
            except httpx.TimeoutException as exc:
                failure = f"timed out after {self.timeout:g}s ({type(exc).__name__})"
            except httpx.TransportError as exc:
                failure = f"connection failed: {self.redact(str(exc)) or type(exc).__name__}"
            else:
                status = response.status_code
                if status < 300:
                    return response.text
                if status in (401, 403):
                    raise SourceError(
                        f"{where}: the admin key in ${self.key_env} was refused (HTTP {status}{self._reason(response)})",
                        hint=f"put an organization admin key (not a project key) in ${self.key_env}; "
                        "check it has not been revoked",
                    )
                if status not in RETRY_STATUSES:
                    raise SourceError(
                        f"{where}: HTTP {status}{self._reason(response)}",
                        hint="check --start/--end and --base-url; the API refused the request as sent",
                    )
                failure = f"HTTP {status}{self._reason(response)}"
                retry_after = _retry_after(response.headers.get("Retry-After"))
            backoff = min(0.5 * 2 ** (attempt - 1), self.max_wait)
            wait = min(retry_after if retry_after is not None else backoff, self.max_wait)
            if attempt >= self.max_attempts or waited_here + wait > self.max_total_wait:
                raise SourceError(
                    f"{where}: {failure}; gave up after {attempt} attempt{'s' if attempt != 1 else ''}"
                    f" and {waited_here:g}s of waiting",
                    hint="the API is rate limiting or failing; try again later or load a shorter window",
                )
            self.retries += 1
            self.waited += wait
            waited_here += wait
            if wait > 0:
                self.sleep(wait)

    def _reason(self, response: httpx.Response) -> str:
        """': <error type/message>' from an error body, redacted and short, or ''."""
        try:
            body = response.json()
        except ValueError:
            return ""
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            parts = [str(error[k]) for k in ("type", "code", "message") if isinstance(error.get(k), str | int)]
            text = self.redact(": ".join(dict.fromkeys(parts)))[:300]
            return f": {text}" if text else ""
        return ""

    def _parse(self, text: str, path: str, number: int) -> dict[str, Any]:
        where = f"{self.source}: GET {path} page {number}"
        try:
            body = json.loads(text)
        except ValueError as exc:
            raise SourceError(
                f"{where}: the answer is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
                hint="a proxy or the API returned something else; check --base-url, retry later",
            ) from None
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise SourceError(
                f"{where}: the answer has no 'data' list",
                hint="check --base-url points at the API root (https://api.openai.com or https://api.anthropic.com)",
            )
        if any(not isinstance(bucket, dict) or not isinstance(bucket.get("results", []), list) for bucket in body["data"]):
            raise SourceError(
                f"{where}: a bucket in 'data' is not an object with a 'results' list",
                hint="the API answered an unexpected shape; report it with this message",
            )
        return body


def _query(params: Mapping[str, QueryValue]) -> list[tuple[str, str]]:
    """Query pairs; a list value repeats its key (``group_by=a&group_by=b``)."""
    pairs: list[tuple[str, str]] = []
    for name, value in params.items():
        if isinstance(value, str | int):
            pairs.append((name, str(value)))
        else:
            pairs.extend((name, str(v)) for v in value)
    return pairs


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max((when - datetime.now(timezone.utc)).total_seconds(), 0.0)
