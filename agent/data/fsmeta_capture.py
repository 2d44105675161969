"""Record what duplicity does not keep of a host's backed-up files, just before its backup.

Run by dupctl on the tenant host as `python3 -c SOURCE` (stdlib only, any python3 that runs
duplicity), with a JSON request on stdin: {"paths": [...], "excludes": [...], "skip": [...],
"record": DIR}. It walks the paths as duplicity selects them (the excludes are duplicity's
shell patterns; `skip` is the spool the record lives in) without following links, and writes
DIR root-only, complete or not at all (DIR.partial renamed):

- `xattrs`: every extended attribute (user.*, trusted.*, security.* such as file capabilities,
  system.posix_acl_* which are the POSIX ACLs), in `getfattr --dump -e base64` format with
  names relative to "/": `cd TARGET && setfattr -h --restore=xattrs` re-applies it.
- `hardlinks`: NUL-separated pairs FIRST, OTHER (relative to "/"): OTHER is a hard link of FIRST.
- `sparse`: NUL-separated names of regular files with holes (`fallocate --dig-holes` them).
- `summary.json`: counts, and the paths that could not be read (base64 names).

It prints the summary on stdout.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import re
import shutil
import stat
import sys

NOT_SUPPORTED = (errno.ENOTSUP, errno.EOPNOTSUPP)


def glob_regex(pattern: str) -> re.Pattern[bytes]:
    """duplicity's shell pattern as a regex (globmatch.glob_to_regex): `**` crosses "/"."""
    out, i, n = "", 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern[i : i + 2] == "**":
            out += ".*"
            i += 2
            continue
        i += 1
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            j = i
            if j < n and pattern[j] in "!^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                out += "\\["
            else:
                stuff = pattern[i:j].replace("\\", "\\\\")
                i = j + 1
                out += "[" + ("^" + stuff[1:] if stuff[0] in "!^" else stuff) + "]"
        else:
            out += re.escape(c)
    return re.compile(os.fsencode("(?s)" + out + "$"))


def quote(name: bytes, special: bytes = b"\n\r") -> bytes:
    """getfattr's quoting (attr's quote()): a backslash and `special` bytes as \\ooo."""
    return b"".join(b"\\%03o" % c if c == 0x5C or c in special else bytes([c]) for c in name)


def inside(path: bytes, root: bytes) -> bool:
    return root == b"/" or path.startswith(root + b"/")


def main() -> None:
    request = json.load(sys.stdin)
    # a pattern ending in "/" matches folders only (duplicity's selection does the same)
    excludes = [(glob_regex(p.rstrip("/") or "/"), p.endswith("/")) for p in request["excludes"]]
    skip = {os.fsencode(p) for p in request["skip"]}
    record = os.fsencode(request["record"])
    partial = record + b".partial"
    os.umask(0o077)
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial, mode=0o700)
    os.chmod(os.path.dirname(record), 0o700)  # the spool: root's alone, whoever made it
    links: dict[tuple[int, int], list[bytes]] = {}
    sparse: list[bytes] = []
    errors: list[list[str]] = []
    counts = {"files": 0, "with_xattrs": 0}

    def relative(path: bytes) -> bytes:
        return path.lstrip(b"/") or b"."

    def failed(path: bytes, why: OSError) -> None:
        errors.append([base64.b64encode(relative(path)).decode(), why.strerror or str(why)])

    with open(os.path.join(partial, b"xattrs"), "wb") as dump:

        def visit(path: bytes, info: os.stat_result) -> None:
            counts["files"] += 1
            try:
                names = sorted(os.listxattr(path, follow_symlinks=False))
            except OSError as error:
                if error.errno not in NOT_SUPPORTED:
                    failed(path, error)
                names = []
            values = []
            for name in names:
                try:
                    values.append((name, os.getxattr(path, name, follow_symlinks=False)))
                except OSError as error:
                    if error.errno != errno.ENODATA:  # removed meanwhile
                        failed(path, error)
            if values:
                counts["with_xattrs"] += 1
                dump.write(b"# file: " + quote(relative(path)) + b"\n")
                for name, value in values:
                    dump.write(quote(os.fsencode(name), b"=\n\r") + b"=0s")
                    dump.write(base64.b64encode(value) + b"\n")
                dump.write(b"\n")
            if stat.S_ISREG(info.st_mode):
                if info.st_nlink > 1:
                    links.setdefault((info.st_dev, info.st_ino), []).append(relative(path))
                if info.st_size and info.st_blocks * 512 < info.st_size:
                    sparse.append(relative(path))

        def excluded(path: bytes, info: os.stat_result) -> bool:
            folder = stat.S_ISDIR(info.st_mode)
            return path in skip or any(
                pattern.match(path) and (folder or not folders_only)
                for pattern, folders_only in excludes
            )

        # a root inside another is walked with it; no link is followed, so no path twice
        roots = sorted({os.path.normpath(os.fsencode(top)) for top in request["paths"]})
        roots = [r for r in roots if not any(inside(r, other) for other in roots if other != r)]
        for root in roots:
            stack = [root]
            while stack:
                path = stack.pop()
                try:
                    info = os.lstat(path)
                except FileNotFoundError:
                    continue
                except OSError as error:
                    failed(path, error)
                    continue
                if path != root and excluded(path, info):
                    continue
                visit(path, info)
                if stat.S_ISDIR(info.st_mode):
                    try:
                        with os.scandir(path) as entries:
                            children = [entry.path for entry in entries]
                    except OSError as error:
                        failed(path, error)
                        continue
                    stack.extend(sorted(children, reverse=True))

    groups = [sorted(group) for group in links.values() if len(group) > 1]
    with open(os.path.join(partial, b"hardlinks"), "wb") as out:
        for group in sorted(groups):
            for other in group[1:]:
                out.write(group[0] + b"\0" + other + b"\0")
    with open(os.path.join(partial, b"sparse"), "wb") as out:
        out.write(b"".join(name + b"\0" for name in sorted(sparse)))
    summary = {
        "version": 1,
        "files": counts["files"],
        "with_xattrs": counts["with_xattrs"],
        "hardlink_groups": len(groups),
        "sparse": len(sparse),
        "errors": errors,
    }
    with open(os.path.join(partial, b"summary.json"), "w") as out:
        json.dump(summary, out)
    shutil.rmtree(record, ignore_errors=True)
    os.rename(partial, record)
    json.dump(summary, sys.stdout)


main()
