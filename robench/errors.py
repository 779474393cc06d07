"""Errors meant for the user: the CLI prints them as one line and exits non-zero."""

from __future__ import annotations


class UserError(Exception):
    """Bad input (a file, a name, a value): message says what, where and what was expected."""


def _loc(parts) -> str:
    out = ""
    for part in parts:
        if isinstance(part, str) and not part.isprintable():
            part = repr(part)  # a key with a newline or a control character, shown escaped
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def one_line(message: str) -> str:
    """``message`` on one line: control characters (newlines included) shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(message))


def validation_message(exc, source: str, prefix: str = "") -> str:
    """One line for a pydantic ``ValidationError``: ``source: prefix.key: what (got value)``.

    An unknown key is reported before a missing one (a typo explains the missing key)."""
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    err = errors[0]
    loc = _loc(err["loc"])
    key = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        missing = [_loc(e["loc"][-1:]) for e in errors if e["type"] == "missing"]
        msg = "unknown key" + (f" (expected {', '.join(missing)}?)" if missing else "")
    elif "input" in err and err["type"] not in ("missing",):
        msg += f" (got {err['input']!r})"
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{source}: {key}: {msg}{more}"
