"""Words of the termination policy: follow-up prompts, durations and errors for people."""

from __future__ import annotations

from typing import Any


def describe_duration(seconds: float) -> str:
    """`90` -> `1m30s`, `3600` -> `1h`, `0.5` -> `0.5s`."""
    if seconds < 60:
        return f"{seconds:g}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return "".join(parts)


def finish_text(finish: str | None, steps: int) -> str:
    """How the last attempt ended, for verdict reasons: `finish reason stop after 3 step(s)`."""
    return f"finish reason {finish or 'none'} after {steps} step(s)"


def retries_text(retries: int, budget: int, message: str) -> str:
    """Why provider retries aborted the phase."""
    return f"provider retried {retries} times (budget {budget}): {message}"


def resume_prompt(finish: str | None, steps: int, missing: tuple[str, ...]) -> str:
    """The follow-up after an incomplete finish: names the finish, the steps, what is missing."""
    lines = [
        "The phase is not finished yet. Your last turn ended with finish reason "
        f"'{finish or 'none'}' after {steps} step(s) in total.",
    ]
    if missing:
        lines.append("Still missing:")
        lines.extend(f"- {item}" for item in missing)
    lines.append("Continue from where you stopped and complete the task; do not start over.")
    return "\n".join(lines)


def repair_prompt(failures: tuple[str, ...]) -> str:
    """The follow-up after a failed `done` check: carries the validator's output."""
    lines = ["The work is not accepted yet: the phase's done checks failed."]
    lines.extend(f"- {failure}" for failure in failures)
    lines.append("Fix these problems, then finish.")
    return "\n".join(lines)


def describe_error(error: dict[str, Any]) -> str:
    """An opencode error for people: `APIError (HTTP 500): mock down`."""
    data = error.get("data") or {}
    message = data.get("message") or error.get("message") or ""
    status = data.get("statusCode")
    name = error.get("name", "Error")
    where = f" (HTTP {status})" if status else ""
    return f"{name}{where}: {message}".rstrip(": ")


def with_details(reason: str, details: tuple[str, ...]) -> str:
    """A verdict's reason followed by the first line of each failed check."""
    return reason + ("; " + "; ".join(d.splitlines()[0] for d in details) if details else "")
