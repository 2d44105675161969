"""Telling people about runs: apprise messages (mail, webhooks, chat...) to the URLs of a
root-only file, healthchecks-style pings of a host's own URL, and hosts gone stale.

URLs hold tokens and passwords: none reaches a log line, a message or an error, which name
the file and the line instead. apprise and urllib3 log the URLs they use (at debug, some at
warning), so their loggers are silenced here, whatever the level of dupctl's own (a filter
on their loggers would miss their child loggers; a level is inherited). apprise keeps its
state in memory, never in files. See docs/notifications.md.
"""

from __future__ import annotations

import fcntl
import json
import logging
import re
import socket
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agent.config.load import STALE_AFTER, HostConfig, Inventory
from agent.errors import ConfigError, NotificationFailed
from agent.files import make_private_dir, read_secret_text, write_atomic
from agent.paths import ServerPaths
from agent.runlog import read_last_success, read_status, stamp
from agent.times import interval

logger = logging.getLogger(__name__)
for _library in ("apprise", "urllib3"):
    logging.getLogger(_library).setLevel(logging.CRITICAL + 1)

MAX_URLS_FILE = 64 * 1024  # bytes: a few hundred URLs
PING_TIMEOUT = 10.0  # seconds: a slow monitor must not hold up a backup for long
PING_PATHS = {"start": "/start", "success": "", "fail": "/fail"}  # healthchecks.io's
MAX_PING_BODY = 10_000  # bytes of text a ping carries (healthchecks keeps up to 100 kB)
NOTIFY_TYPES = {"ok": "success", "failed": "failure", "warning": "warning", "stale": "warning"}
NEVER = "never"  # the stale episode of a host that has had no successful backup yet
SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,31})://")


@dataclass(frozen=True)
class Event:
    """Something to tell: a run's outcome, a host gone stale, a test."""

    action: str  # backup, drill, prune, stale, test
    result: str  # ok, failed, warning (a good run with a failed hook), stale
    host: str | None = None
    error: str | None = None  # one line
    hint: str | None = None
    log: str | None = None
    details: tuple[str, ...] = ()  # more lines: the set made, the duration, the last run


@dataclass(frozen=True)
class Delivery:
    """What became of one message: how many URLs of `file` took it, and which lines did not."""

    file: Path
    sent: int
    failed: tuple[tuple[int, str], ...] = ()  # (line, why)

    @property
    def total(self) -> int:
        return self.sent + len(self.failed)


def read_urls(path: Path, key: str) -> list[tuple[int, str]]:
    """The URLs of `path` with their line numbers (blank lines and # comments skipped).

    ConfigError, naming the file and the inventory `key` that names it, unless it is a
    regular file of root's that nobody else may read, with at least one URL: its URLs
    hold tokens. Opened without blocking (a FIFO) and read up to MAX_URLS_FILE."""
    text = read_secret_text(path, key, "its URLs hold tokens", MAX_URLS_FILE,
                            f"write one URL per line into {path}")  # fmt: skip
    lines = text.splitlines()
    where = f"{path} ({key})"
    urls = [(number, line.strip()) for number, line in enumerate(lines, 1)]
    urls = [(number, url) for number, url in urls if url and not url.startswith("#")]
    if not urls:
        raise ConfigError(
            f"{where} lists no URL", hint=f"write one URL per line into {path} (# comments)"
        )
    return urls


# Messages


def should_tell(inventory: Inventory, event: Event) -> bool:
    """Failures, warnings, stale hosts and tests always; successes with `success: true`."""
    settings = inventory.notifications
    if settings is None:
        return False
    return event.result != "ok" or event.action == "test" or settings.success


def message(event: Event, server: str) -> tuple[str, str]:
    """The title and body of `event` as told from `server`: host, action, result, then the
    error, the hint, the log and the details, one per line."""
    words = dict.fromkeys(word for word in (event.host, event.action, event.result) if word)
    subject = " ".join(words)
    fields = (("error", event.error), ("hint", event.hint), ("log", event.log))
    lines = [subject, *(f"{label}: {value}" for label, value in fields if value), *event.details]
    return f"dupstack on {server}: {subject}", "\n".join([*lines, f"server: {server}"])


def tell(paths: ServerPaths, inventory: Inventory, event: Event) -> Delivery:
    """Send `event` to every URL of notifications.urls_file; each URL that did not take it is
    a warning naming its line, never raised. ConfigError only for the file itself."""
    settings = inventory.notifications
    if settings is None:
        raise ConfigError(
            f"{inventory.file} has no notifications: section",
            hint="add `notifications: {urls_file: FILE}` (docs/notifications.md)",
        )
    delivery = deliver(paths.under(settings.urls_file), event)
    for number, why in delivery.failed:
        logger.warning("notification not delivered by line %d of %s: %s", number,
                       delivery.file, why)  # fmt: skip
    return delivery


def deliver(urls_file: Path, event: Event) -> Delivery:
    """Send `event` to each URL of `urls_file` in turn (one apprise object each: a failure
    is known by its line)."""
    import apprise  # here: a run that tells nobody never loads it (each run's start-up)

    urls = read_urls(urls_file, "notifications.urls_file")
    title, body = message(event, socket.gethostname())
    kind = apprise.NotifyType(NOTIFY_TYPES.get(event.result, "info"))
    asset = apprise.AppriseAsset(storage_mode=apprise.PersistentStoreMode.MEMORY)
    sent, failed = 0, []
    for number, url in urls:
        scheme = match.group(1).lower() if (match := SCHEME.match(url)) else None
        try:
            service = apprise.Apprise(asset=asset)
            if not scheme or not service.add(url):
                failed.append((number, "not a URL apprise can use"))
            elif service.notify(body=body, title=title, notify_type=kind,
                                body_format=apprise.NotifyFormat.TEXT):  # fmt: skip
                sent += 1
            else:
                failed.append((number, f"{scheme}: refused or unreachable"))
        except Exception as bug:  # its text may hold the URL: only its type is told
            failed.append((number, f"{scheme}: apprise failed ({type(bug).__name__})"))
    return Delivery(urls_file, sent, tuple(failed))


# Pings


def ping_url(file: Path, host: HostConfig) -> str:
    """The one http(s) URL of `file`, the host's ping_url_file (ConfigError naming it)."""
    key = f"hosts.{host.name}.ping_url_file"
    urls = read_urls(file, key)
    where = f"{file} ({key})"
    if len(urls) > 1:
        raise ConfigError(
            f"{where} lists {len(urls)} URLs: a host pings one",
            hint="keep the host's own check URL only",
        )
    number, url = urls[0]
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"{where}: line {number} is not an http(s) URL",
            hint="give the check's ping URL, like https://hc-ping.com/UUID",
        )
    return url


def ping_target(url: str, kind: str) -> str:
    """Where a `kind` ping goes (start, success, fail): URL/start, URL, URL/fail."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=parts.path.rstrip("/") + PING_PATHS[kind]))


def ping(paths: ServerPaths, host: HostConfig, kind: str, text: str = "") -> None:
    """POST `text` to the host's ping URL for `kind`; DupstackError naming the file (never
    the URL) if it does not answer with success within PING_TIMEOUT."""
    import http.client  # here: urllib.request and ssl cost every backup ~20 ms to import
    import urllib.error
    import urllib.request

    assert host.ping_url_file is not None
    file = paths.under(host.ping_url_file)
    try:
        request = urllib.request.Request(  # noqa: S310 (ping_url allows http and https only)
            ping_target(ping_url(file, host), kind),
            data=text.encode()[:MAX_PING_BODY],
            method="POST",
            headers={"User-Agent": "dupctl", "Content-Type": "text/plain; charset=utf-8"},
        )
        with urllib.request.urlopen(request, timeout=PING_TIMEOUT) as answer:  # noqa: S310
            answer.read(1024)
        return
    except (ValueError, UnicodeError):  # a URL urllib cannot send (its text is the URL's)
        why = "not a URL this server can send (ASCII http:// or https:// only)"
    except urllib.error.HTTPError as error:
        why = f"HTTP {error.code}"
    except urllib.error.URLError as error:
        why = _why(error.reason) if isinstance(error.reason, BaseException) else "unreachable"
    except (OSError, http.client.HTTPException) as error:
        why = _why(error)
    raise NotificationFailed(
        f"{host.name}: {kind} ping failed: {why} (the URL in {file})",
        hint=f"check the URL in {file} and that this server reaches it",
    )


def _why(error: BaseException) -> str:
    """What went wrong, in words that never quote the URL (an error's own text may)."""
    import ssl  # loaded by ping's urllib.request already

    if isinstance(error, TimeoutError):
        return f"no answer within {PING_TIMEOUT:g} s"
    if isinstance(error, ssl.SSLError):
        return f"TLS: {error.reason or 'handshake failed'}"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return type(error).__name__


# Staleness


@dataclass(frozen=True)
class Stale:
    """A host without a successful backup for longer than stale_after."""

    host: str
    since: str  # its last success's end, or when `notify stale` first knew it without one
    episode: str  # its last success's end, or NEVER: told once per episode
    last_run: dict[str, Any] | None
    told: bool  # already told in this episode


def stale_after(inventory: Inventory) -> str | None:
    """notifications.stale_after (36h without the section); None: staleness is off."""
    return inventory.notifications.stale_after if inventory.notifications else STALE_AFTER


def stale_hosts(paths: ServerPaths, inventory: Inventory, now: datetime) -> list[Stale]:
    """The hosts whose last successful backup ended more than stale_after before `now`; a
    host that has none yet counts from when `notify stale` first knew it (cron runs it
    hourly: about when it was added), so a new host is not stale at once."""
    setting = stale_after(inventory)
    if setting is None:
        return []
    limit = interval(setting)
    state = _read_state(paths)
    found = []
    for name in sorted(inventory.hosts):
        success = read_last_success(paths, name)
        known = state.get(name, {})
        episode = success["end"] if success else NEVER
        since = success["end"] if success else known.get("first_seen", stamp(now))
        if now - datetime.fromisoformat(since) > limit:
            told = known.get("told") == episode
            found.append(Stale(name, since, episode, read_status(paths, name), told))
    return found


def report_stale(
    paths: ServerPaths, inventory: Inventory, now: datetime
) -> list[tuple[Stale, Delivery | None]]:
    """Every stale host, each told once per episode (a new success ends it): the delivery
    when told now, None when told before or when there is nobody to tell. Remembers, in a
    root-only state file, what was told and when each host was first known."""
    folder = paths.state_dir / "notify"
    make_private_dir(folder)
    with open(folder / ".lock", "a") as lock:  # cron's run and an operator's: one tells
        fcntl.flock(lock, fcntl.LOCK_EX)
        known = _read_state(paths)
        state = {
            name: {"first_seen": stamp(now), **known.get(name, {})} for name in inventory.hosts
        }
        reports: list[tuple[Stale, Delivery | None]] = []
        for host in stale_hosts(paths, inventory, now):
            delivery = None
            if not host.told and inventory.notifications is not None:
                delivery = tell(paths, inventory, stale_event(host, now))
                if delivery.sent:  # someone knows; lines that failed were warned about
                    state[host.host]["told"] = host.episode
            reports.append((host, delivery))
        write_atomic(_state_file(paths), json.dumps(state, indent=2, sort_keys=True) + "\n")
    return reports


def stale_event(host: Stale, now: datetime) -> Event:
    """What is told of a stale host: how long without a success, and its last run."""
    age = _age(now - datetime.fromisoformat(host.since))
    if host.episode == NEVER:
        error = f"no successful backup yet, known for {age} (since {host.since})"
    else:
        error = f"no successful backup for {age} (last: {host.since})"
    last = host.last_run
    details = ()
    if last:
        outcome = f"{last['result']}: {last['error']}" if last.get("error") else last["result"]
        details = (f"last run: {last['start']}, {outcome}",)
    return Event(
        action="stale",
        result="stale",
        host=host.host,
        error=error,
        hint=f"see `dupctl status {host.host}`; `dupctl backup {host.host}` runs one now",
        log=last.get("log") if last else None,
        details=details,
    )


def _age(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    return f"{hours} h" if hours < 72 else f"{hours // 24} days"


def _state_file(paths: ServerPaths) -> Path:
    return paths.state_dir / "notify" / "stale.json"


def _read_state(paths: ServerPaths) -> dict[str, dict[str, str]]:
    """HOST -> first_seen (when first known), told (the episode last told)."""
    try:
        return json.loads(_state_file(paths).read_text())
    except FileNotFoundError:
        return {}
    except ValueError:  # cut short (a full disk): what was told is forgotten, told again
        logger.warning("%s is not JSON: starting it afresh", _state_file(paths))
        return {}
