"""HTTP-level fixtures for the provisioner, the way openstacksdk's own unit tests work.

Real openstacksdk/keystoneauth code runs; only the HTTP transport is replaced by
requests_mock. A clouds.yaml in tmp_path (OS_CLIENT_CONFIG_FILE) gives password auth
against a mocked Keystone whose token carries a service catalog (services can be left
out). Each test registers the API calls it expects, in order, with realistic bodies
(tests/provisioner/responses/), then `assert_calls()` checks method, URL, query and
request body of every call our code made, and that it made no other.
"""

from __future__ import annotations

import copy
import json
import os
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openstack
import pytest
import requests_mock
import yaml

RESPONSES = Path(__file__).parent / "responses"
CLOUD = "testcloud"
AUTH_URL = "https://identity.example.com"
PROJECT_ID = "8f0c1e3b5a7d4e2f9b6c0d1a2e3f4a5b"
USER_ID = "9a7c2e1f0b3d4c5e8f6a1b2c3d4e5f60"  # the user of keystone_token.json
TOKEN = "gAAAAABmTestTokenTestTokenTestToken"
PASSWORD = "hunter2-not-a-real-password"

# service type -> (catalog name, public endpoint), as a DevStack-like cloud lists them.
SERVICES: dict[str, tuple[str, str]] = {
    "identity": ("keystone", AUTH_URL),
    "compute": ("nova", "https://compute.example.com/v2.1"),
    "image": ("glance", "https://image.example.com"),
    "network": ("neutron", "https://network.example.com"),
    "block-storage": ("cinder", f"https://block-storage.example.com/v3/{PROJECT_ID}"),
    "orchestration": ("heat", f"https://orchestration.example.com/v1/{PROJECT_ID}"),
    "object-store": ("swift", f"https://object-store.example.com/v1/AUTH_{PROJECT_ID}"),
}
# Swift is listed only where a test asks for it (stack-offsite).
ALL_SERVICES = ("identity", "compute", "image", "network", "block-storage", "orchestration")
# The version documents the SDK fetches before its first call to a service.
DISCOVERY = {
    "compute": ("https://compute.example.com/v2.1", "nova_version.json", 200),
    "image": ("https://image.example.com/", "glance_versions.json", 300),
    "block-storage": ("https://block-storage.example.com/v3/", "cinder_versions.json", 200),
}
BASE = {
    "identity": f"{AUTH_URL}/v3",
    "compute": "https://compute.example.com/v2.1",
    "image": "https://image.example.com/v2",
    "network": "https://network.example.com/v2.0",
    "block-storage": f"https://block-storage.example.com/v3/{PROJECT_ID}",
    "orchestration": f"https://orchestration.example.com/v1/{PROJECT_ID}",
    "object-store": f"https://object-store.example.com/v1/AUTH_{PROJECT_ID}",
}
# Authentication and version discovery: made by keystoneauth itself, never listed as calls.
AUTH_CALLS = (("GET", f"{AUTH_URL}/"), ("POST", f"{AUTH_URL}/v3/auth/tokens"))
WRITES = ("POST", "PUT", "PATCH", "DELETE")


def load(name: str, **placeholders: str) -> Any:
    """A recorded response body; PROJECT_ID and the given placeholders filled in."""
    text = (RESPONSES / name).read_text()
    for key, value in {"PROJECT_ID": PROJECT_ID, **placeholders}.items():
        text = text.replace(key, value)
    return json.loads(text)


def merged(body: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A copy of a single-resource body ({"subnet": {...}}) with `fields` changed."""
    ((key, resource),) = body.items()
    return {key: {**copy.deepcopy(resource), **fields}}


def token_body(services: tuple[str, ...]) -> dict[str, Any]:
    """Keystone's POST /v3/auth/tokens answer, its catalog limited to `services`."""
    body = load("keystone_token.json")
    catalog = []
    for number, service_type in enumerate(services, start=1):
        name, url = SERVICES[service_type]
        catalog.append(
            {
                "id": f"{number:032x}",
                "type": service_type,
                "name": name,
                "endpoints": [
                    {
                        "id": f"{number:016x}{index:016x}",
                        "interface": interface,
                        "region": "RegionOne",
                        "region_id": "RegionOne",
                        "url": url,
                    }
                    for index, interface in enumerate(("public", "internal", "admin"))
                ],
            }
        )
    body["token"]["catalog"] = catalog
    return body


def not_found(service: str, message: str) -> dict[str, Any]:
    """A 404 shaped like the given service's (Neutron, Nova/Cinder, Glance, Heat)."""
    if service == "network":
        kind = message.split()[0] + "NotFound"
        body: Any = {"NeutronError": {"type": kind, "message": message, "detail": ""}}
    elif service == "orchestration":
        body = {
            "explanation": "The resource could not be found.",
            "code": 404,
            "error": {"message": message, "traceback": None, "type": "EntityNotFound"},
            "title": "Not Found",
        }
    elif service == "image":
        return {
            "status_code": 404,
            "text": f"<html><head><title>404 Not Found</title></head><body><h1>404 Not Found"
            f"</h1>{message}<br /><br /></body></html>",
            "headers": {"Content-Type": "text/html; charset=UTF-8"},
        }
    else:
        body = {"itemNotFound": {"code": 404, "message": message}}
    return {"status_code": 404, "json": body}


def url(service: str, *parts: str, **query: str | list[str]) -> str:
    """The URL of an API call: base of `service`, path `parts`, query string `query`."""
    path = "/".join([BASE[service], *(urllib.parse.quote(p, safe="") for p in parts)])
    return path + ("?" + urllib.parse.urlencode(query, doseq=True) if query else "")


def _split(address: str) -> tuple[str, str, str, dict[str, list[str]]]:
    parts = urllib.parse.urlsplit(address)
    return parts.scheme, parts.netloc, parts.path.rstrip("/"), urllib.parse.parse_qs(parts.query)


class FakeCloud:
    """A requests-mocked cloud: Keystone, service discovery, then the calls a test expects.

    The helpers are reachable from it too (test modules cannot import conftest)."""

    project_id = PROJECT_ID
    user_id = USER_ID
    cloud_name = CLOUD
    url = staticmethod(url)
    load = staticmethod(load)
    merged = staticmethod(merged)
    not_found = staticmethod(not_found)
    token_body = staticmethod(token_body)

    def __init__(self, mocker: requests_mock.Mocker, services: tuple[str, ...]) -> None:
        self.mocker = mocker
        self.services = services
        self.expected: list[dict[str, Any]] = []
        self._responses: dict[tuple[str, str], list[dict[str, Any]]] = {}
        mocker.get(f"{AUTH_URL}/", json=load("keystone_versions.json"), status_code=300)
        mocker.post(
            f"{AUTH_URL}/v3/auth/tokens",
            json=token_body(services),
            status_code=201,
            headers={"X-Subject-Token": TOKEN},
        )
        self.discovery = set()
        for service, (address, name, status) in DISCOVERY.items():
            if service in services:
                mocker.get(address, json=load(name), status_code=status, complete_qs=True)
                self.discovery.add(address)

    def register(self, *calls: dict[str, Any]) -> None:
        """Expect `calls` in this order; each: method, uri, response (json/status_code/...),
        and optionally `body` (the JSON request body the call must carry)."""
        for call in calls:
            call = dict(call)
            method, uri = call.pop("method"), call.pop("uri")
            expected = {"method": method, "uri": uri}
            if "body" in call:
                expected["body"] = call.pop("body")
            self.expected.append(expected)
            responses = self._responses.setdefault((method, uri), [])
            responses.append({"status_code": 200, **call})
            # One matcher per method+URL answering its responses in turn (as openstacksdk's
            # tests do); complete_qs so that a list call never answers a filtered one.
            self.mocker.register_uri(method, uri, responses, complete_qs=True)

    def requests(self) -> list[Any]:
        """The API calls made, without authentication and version discovery."""
        return [
            request
            for request in self.mocker.request_history
            if (request.method, request.url) not in AUTH_CALLS
            and not (request.method == "GET" and request.url in self.discovery)
        ]

    def writes(self) -> list[str]:
        """Every call that could have changed something, as 'METHOD URL'."""
        return [f"{r.method} {r.url}" for r in self.requests() if r.method in WRITES]

    def assert_calls(self) -> None:
        """The calls made are exactly the expected ones, in order, with the expected bodies."""
        made = self.requests()
        made_lines = [f"{r.method} {r.url}" for r in made]
        expected_lines = [f"{c['method']} {c['uri']}" for c in self.expected]
        for index, (call, request) in enumerate(zip(self.expected, made, strict=False)):
            assert (call["method"], *_split(call["uri"])) == (
                request.method,
                *_split(request.url),
            ), f"call {index}: expected {expected_lines[index]}, got {made_lines[index]}"
            if "body" in call:
                assert request.json() == call["body"], f"call {index} body: {made_lines[index]}"
        assert len(made) == len(self.expected), (
            f"expected {len(self.expected)} calls, made {len(made)}:\n" + "\n".join(made_lines)
        )

    def sent(self, method: str, uri: str) -> Any:
        """The JSON body of the (last) `method` call to `uri`."""
        matches = [
            r for r in self.requests() if r.method == method and _split(r.url) == _split(uri)
        ]
        assert matches, f"no {method} {uri} was made"
        return matches[-1].json()

    def connection(self) -> openstack.connection.Connection:
        """A real Connection to this cloud, as provisioner.cloud.connect makes it."""
        conn = openstack.connect(cloud=CLOUD)
        conn.authorize()
        return conn


def write_clouds_yaml(path: Path, auth_url: str = AUTH_URL) -> Path:
    document = {
        "clouds": {
            CLOUD: {
                "auth": {
                    "auth_url": auth_url,
                    "username": "demo",
                    "password": PASSWORD,
                    "project_name": "demo",
                    "user_domain_name": "Default",
                    "project_domain_name": "Default",
                },
                "region_name": "RegionOne",
                "identity_api_version": "3",
                "interface": "public",
            }
        }
    }
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No OS_* variable from the caller's shell, no clouds.yaml but the one the test writes."""
    for key in list(os.environ):
        if key.startswith("OS_"):
            monkeypatch.delenv(key)
    config = tmp_path / "clouds.yaml"
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(config))
    monkeypatch.setenv("OS_CLIENT_SECURE_FILE", str(tmp_path / "secure-absent.yaml"))
    return config


@pytest.fixture
def clouds_yaml(isolated_env: Path) -> Path:
    """A clouds.yaml with cloud `testcloud`: password auth against the mocked Keystone."""
    return write_clouds_yaml(isolated_env)


@pytest.fixture
def http() -> Iterator[requests_mock.Mocker]:
    """Every HTTP request goes to requests_mock; an unregistered one fails the call."""
    with requests_mock.Mocker(case_sensitive=True) as mocker:
        yield mocker


@pytest.fixture
def make_cloud(http: requests_mock.Mocker, clouds_yaml: Path) -> Callable[..., FakeCloud]:
    """make_cloud(services=...) -> FakeCloud whose catalog lists only `services`."""

    def factory(services: tuple[str, ...] = ALL_SERVICES) -> FakeCloud:
        """A cloud whose catalog lists `services` (all in RegionOne)."""
        return FakeCloud(http, services)

    return factory


@pytest.fixture
def cloud(make_cloud: Callable[..., FakeCloud]) -> FakeCloud:
    """A cloud with identity, compute, image, network, block-storage and orchestration."""
    return make_cloud()
