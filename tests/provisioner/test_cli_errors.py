"""How the CLI fails: one error line plus a hint, the documented exit code, no traceback.

No test reaches a network: every HTTP request goes to requests_mock (`http` fixture),
and the tests that must not contact the cloud check that it saw no request at all.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import requests

from provisioner import cli
from provisioner.render import TEMPLATE as COMMITTED
from provisioner.templates import CREATE_TEMPLATE as TEMPLATE
from tests.provisioner.heat_api import run_cli

PASSCODE = "correct-horse-battery-staple-42"
START = [
    "stack-start",
    "backup",
    "--keypair",
    "mykey",
    "--flavor",
    "m1.small",
    "--image",
    "debian-12",
    "--ssh-cidr",
    "203.0.113.7/32",
]


def assert_one_error_with_hint(err: str) -> None:
    lines = err.splitlines()
    assert len([line for line in lines if line.startswith("error:")]) == 1, err
    assert len([line for line in lines if line.startswith("hint:")]) == 1, err
    assert "Traceback" not in err


# --- credentials and reachability --------------------------------------------------------


def test_no_credentials_at_all(isolated_env: Path, http, capsys) -> None:
    assert not isolated_env.exists()  # no clouds.yaml, and no OS_* variable either

    code, out, err = run_cli(["stack-status", "backup"], capsys)

    assert code == 1
    error, hint = err.splitlines()
    assert error.startswith("error: connecting to the cloud: no usable credentials ("), err
    assert "auth_url" in error  # keystoneauth names what is missing
    assert hint == (
        "hint: give credentials the openstack way: --os-cloud NAME (clouds.yaml), OS_CLOUD, "
        "or source your project's openrc file"
    )
    assert out == ""
    assert http.request_history == []


def test_unknown_cloud_name(clouds_yaml: Path, http, capsys) -> None:
    code, _out, err = run_cli(["stack-get-url", "backup", "--os-cloud", "nosuch"], capsys)

    assert code == 1
    assert "error: connecting to the cloud: cloud configuration: Cloud nosuch was not found." in err
    assert "hint: give credentials the openstack way" in err
    assert_one_error_with_hint(err)
    assert http.request_history == []


def test_cloud_from_os_cloud_variable(cloud, monkeypatch, capsys) -> None:
    """OS_CLOUD picks the clouds.yaml entry, as the openstack client does."""
    monkeypatch.setenv("OS_CLOUD", cloud.cloud_name)
    cloud.register(
        {
            "method": "GET",
            "uri": cloud.url("orchestration", "stacks", "backup"),
            **cloud.not_found("orchestration", "The Stack (backup) could not be found."),
        }
    )

    code, _out, _err = run_cli(["stack-get-url", "backup"], capsys)

    assert code == 3
    cloud.assert_calls()
    # Password auth with the clouds.yaml entry, scoped to its project.
    (auth,) = [r for r in cloud.mocker.request_history if r.url.endswith("/v3/auth/tokens")]
    assert auth.json()["auth"] == {
        "identity": {
            "methods": ["password"],
            "password": {
                "user": {
                    "name": "demo",
                    "password": "hunter2-not-a-real-password",
                    "domain": {"name": "Default"},
                }
            },
        },
        "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}},
    }


UNREACHABLE = [requests.exceptions.ConnectionError, requests.exceptions.ConnectTimeout]


def keystone_rejects_the_password(http) -> None:
    http.get(
        "https://identity.example.com/",
        status_code=300,
        json={
            "versions": {
                "values": [
                    {
                        "id": "v3.14",
                        "status": "stable",
                        "links": [{"rel": "self", "href": "https://identity.example.com/v3/"}],
                    }
                ]
            }
        },
    )
    http.post(
        "https://identity.example.com/v3/auth/tokens",
        status_code=401,
        json={
            "error": {
                "code": 401,
                "title": "Unauthorized",
                "message": "The request you have made requires authentication.",
            }
        },
    )


@pytest.mark.parametrize("failure", UNREACHABLE)
def test_unreachable_auth_url_is_one_clear_error(clouds_yaml: Path, http, capsys, failure) -> None:
    http.get("https://identity.example.com/", exc=failure)

    code, out, err = run_cli(["stack-status", "backup", "--os-cloud", "testcloud"], capsys)

    assert code == 1
    first = err.splitlines()[0]
    assert first.startswith("error: connecting to the cloud: "), err
    assert "internal error" not in err
    assert "Traceback" not in err
    assert out == ""
    assert {r.hostname for r in http.request_history} == {"identity.example.com"}


@pytest.mark.parametrize("failure", UNREACHABLE)
def test_unreachable_auth_url_says_so_and_hints(clouds_yaml: Path, http, capsys, failure) -> None:
    http.get("https://identity.example.com/", exc=failure)

    code, _out, err = run_cli(["stack-status", "backup", "--os-cloud", "testcloud"], capsys)

    assert code == 1
    lines = err.splitlines()
    assert re.fullmatch(
        r"error: connecting to the cloud: cannot reach the cloud \((ConnectFailure|"
        r"ConnectTimeout|DiscoveryFailure)\)",
        lines[0],
    ), err
    assert lines[1:] == ["hint: check auth_url and your network, then try again"]


def test_rejected_credentials_is_one_clear_error(clouds_yaml: Path, http, capsys) -> None:
    keystone_rejects_the_password(http)

    code, out, err = run_cli(["stack-status", "backup", "--os-cloud", "testcloud"], capsys)

    assert code == 1
    assert err.startswith("error: connecting to the cloud: ")
    assert "401" in err.splitlines()[0]
    assert "Traceback" not in err
    assert "hunter2" not in err  # the password from clouds.yaml is never echoed
    assert out == ""


def test_rejected_credentials_hint(clouds_yaml: Path, http, capsys) -> None:
    keystone_rejects_the_password(http)

    code, _out, err = run_cli(["stack-status", "backup", "--os-cloud", "testcloud"], capsys)

    assert code == 1
    assert "error: connecting to the cloud: the cloud rejected the credentials (401)" in err
    assert "hint: check the user, password and project" in err
    assert_one_error_with_hint(err)


# --- usage ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["stack-start", "backup"],  # --keypair & co are required
        ["stack-connect", "backup"],  # at least one subnet
        ["stack-start", "backup", "--volume-size", "big"],
        ["stack-nope"],
        [],
        ["stack-status", "backup", "--no-such-flag"],
    ],
)
def test_bad_flags_are_usage_errors(argv, http, capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(argv)

    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: dupstack")
    assert "error:" in err
    assert http.request_history == []


def test_script_entry_point_bad_flags(monkeypatch, http, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["stack-get-url"])

    with pytest.raises(SystemExit) as caught:
        cli.stack_get_url_main()

    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: stack-get-url")
    assert "the following arguments are required: NAME" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--ssh-cidr", "203.0.113.300/32"], "error: --ssh-cidr '203.0.113.300/32' is not a CIDR"),
        (["--subnet-cidr", "backup-net"], "error: --subnet-cidr 'backup-net' is not a CIDR"),
        (["--volume-size", "5"], "error: --volume-size 5 is out of range"),
        (["--timeout", "0"], "error: --timeout 0 must be at least 1 minute"),
        (["-e", "/nonexistent/env.yaml"], "error: environment file /nonexistent/env.yaml does not"),
    ],
)
def test_bad_values_exit_2_before_contacting_the_cloud(
    isolated_env, http, capsys, extra, message
) -> None:
    code, _out, err = run_cli([*START, *extra], capsys)

    assert code == 2
    assert err.startswith(message), err
    assert "Traceback" not in err
    assert http.request_history == []


def test_short_passcode_file_is_refused(isolated_env, http, capsys, tmp_path) -> None:
    short = tmp_path / "passcode"
    short.write_text("tooshort\n")
    short.chmod(0o600)

    code, out, err = run_cli([*START, "--passcode-file", str(short), "--dry-run"], capsys)

    assert code == 2
    assert "shorter than 12 characters" in err
    assert "tooshort" not in out + err
    assert http.request_history == []


# --- missing stack -------------------------------------------------------------------------


def test_get_url_of_missing_stack_exit_3_with_hint(cloud, capsys) -> None:
    cloud.register(
        {
            "method": "GET",
            "uri": cloud.url("orchestration", "stacks", "backup"),
            **cloud.not_found("orchestration", "The Stack (backup) could not be found."),
        }
    )

    code, out, err = run_cli(["stack-get-url", "backup", "--os-cloud", "testcloud"], capsys)

    assert code == 3
    assert err.splitlines() == [
        "error: no stack named 'backup' in this project",
        "hint: list stacks with `openstack stack list`, or create it: stack-start backup",
    ]
    assert out == ""
    cloud.assert_calls()


# --- dry run ------------------------------------------------------------------------------


def test_dry_run_contacts_nothing_and_masks_the_passcode(
    isolated_env, http, capsys, tmp_path
) -> None:
    """No credentials at all, and still a dry run works: it never reaches for the cloud."""
    passcode_file = tmp_path / "passcode"
    passcode_file.write_text(PASSCODE + "\n")
    passcode_file.chmod(0o600)

    code, out, err = run_cli([*START, "--passcode-file", str(passcode_file), "--dry-run"], capsys)

    assert code == 0, err
    assert http.request_history == []
    assert PASSCODE not in out + err
    assert "passcode: '******'" in out
    assert "keypair_name: mykey" in out
    assert f"# template: {TEMPLATE}" in out
    assert TEMPLATE.read_text() == COMMITTED.read_text()  # package data is heat/'s template
    assert out.rstrip().endswith("# would create stack 'backup'; nothing was contacted")
    assert "package_index" not in out.split("# parameters")[1]  # the template's default


def test_dry_run_passes_where_the_agent_comes_from(isolated_env, http, capsys) -> None:
    mirror = ["--package-index", "https://pypi.mirror.internal/simple"]
    pins = ["--agent-version", "0.2.0", "--agent-sha256", "a" * 64]
    code, out, err = run_cli([*START, *mirror, *pins, "--dry-run"], capsys)
    assert code == 0, err
    parameters = out.split("# parameters (passcode masked):")[1]
    assert "package_index: https://pypi.mirror.internal/simple" in parameters
    assert "agent_version: 0.2.0" in parameters and f"agent_sha256: {'a' * 64}" in parameters
    assert http.request_history == []


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--agent-version", "0.2.0"], "--agent-version and --agent-sha256 go together"),
        (["--wheelhouse-url", "https://x/w.tar"], "--wheelhouse-url and --wheelhouse-sha256"),
        (["--package-index", "file:///srv/simple"], "--package-index 'file:///srv/simple' is"),
        (["--agent-version", "0.2", "--agent-sha256", "A" * 64], "--agent-sha256 'AAAA"),
    ],
)
def test_bad_agent_sources_are_refused_before_anything(
    isolated_env, http, capsys, options: list[str], expected: str
) -> None:
    code, _out, err = run_cli([*START, *options, "--dry-run"], capsys)
    assert code == 2
    assert expected in err
    assert http.request_history == []


def test_dry_run_never_prints_a_generated_passcode(isolated_env, http, capsys) -> None:
    first = run_cli([*START, "--dry-run"], capsys)
    second = run_cli([*START, "--dry-run"], capsys)

    assert first[0] == second[0] == 0
    # A fresh random passcode is generated each run: had it been printed, the runs differ.
    assert first == second
    assert "passcode: '******'" in first[1]
    # And no passcode-like token (32 URL-safe characters) appears beyond the template's own.
    template_tokens = set(re.findall(r"[A-Za-z0-9_-]{32,}", TEMPLATE.read_text()))
    assert set(re.findall(r"[A-Za-z0-9_-]{32,}", first[1] + first[2])) <= template_tokens
    assert http.request_history == []
