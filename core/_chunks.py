"""Text streamed in many small pieces, kept as few strings (pure)."""

from __future__ import annotations

COMPACT_EVERY = 256


class Chunks:
    """Pieces of text appended one by one; every `COMPACT_EVERY` pieces become one string, so a
    part streamed as forty thousand deltas does not keep forty thousand objects."""

    __slots__ = ("_pieces",)

    def __init__(self, first: str | None = None) -> None:
        self._pieces: list[str] = [first] if first else []

    def add(self, piece: str) -> None:
        """Append a piece."""
        pieces = self._pieces
        pieces.append(piece)
        if len(pieces) >= COMPACT_EVERY:
            pieces[:] = ["".join(pieces)]

    def text(self) -> str:
        """Everything appended so far."""
        return "".join(self._pieces)

    @property
    def pieces(self) -> int:
        """How many strings are kept."""
        return len(self._pieces)

    def __bool__(self) -> bool:
        return bool(self._pieces)
