"""Words of the termination policy: follow-up prompts and durations for people."""

from __future__ import annotations


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
