"""The router's own config path, as the experiment DAG uses it: `GET /config` and `POST /config` over HTTP.

The autopilot changes the split exactly as an operator does, so the router validates the change,
writes it by compare-and-swap into the shared store every replica serves from, and records who made
it in the store's history. The write carries the `If-Match` of the read the decision was made on: a
change anyone made in between answers 412 and nothing is written; the task fails, Airflow retries,
and the retry decides again on what is set then. The admin token comes from the settings (the
environment or a secret file), never from a command line, and no message repeats it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

TIMEOUT_S = 10.0


class RouterConfigError(RuntimeError):
    """The router could not be asked or refused the change; the message says which and why."""


@dataclass(frozen=True)
class Served:
    """The config the router serves now, with the ETag its change must carry."""

    split: float
    mode: str
    challenger: str | None
    updated_at: str | None
    updated_by: str
    etag: str

    @classmethod
    def from_response(cls, body: dict[str, Any], etag: str) -> Served:
        return cls(float(body["ab_split_b"]), str(body["mode"]), body.get("challenger"), body.get("updated_at"),
                   str(body.get("updated_by", "")), etag)


def read(url: str) -> Served:
    """GET /config: the split, mode and challenger in effect, and the ETag."""
    try:
        response = requests.get(f"{url.rstrip('/')}/config", timeout=TIMEOUT_S)
    except requests.RequestException as exc:
        raise RouterConfigError(f"the router at {url} cannot be reached: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise RouterConfigError(f"GET {url}/config answered {response.status_code}: {_problem(response)}")
    return Served.from_response(response.json(), response.headers.get("ETag", "*"))


def write(url: str, token: str, served: Served, changes: dict[str, Any]) -> Served:
    """POST /config with `changes` if the config is still at `served.etag`; the config now in effect."""
    if not token:
        raise RouterConfigError("TICKET_AB_ADMIN_TOKEN is not set: the experiment DAG cannot change the split")
    headers = {"Authorization": f"Bearer {token}", "If-Match": served.etag}
    try:
        response = requests.post(f"{url.rstrip('/')}/config", json=changes, headers=headers, timeout=TIMEOUT_S)
    except requests.RequestException as exc:
        raise RouterConfigError(f"the router at {url} cannot be reached: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise RouterConfigError(f"POST {url}/config {changes} answered {response.status_code}: "
                                f"{_problem(response)}")
    return Served.from_response(response.json(), response.headers.get("ETag", "*"))


def _problem(response: requests.Response) -> str:
    try:
        return str(response.json().get("message", response.text[:200]))
    except ValueError:
        return response.text[:200]
