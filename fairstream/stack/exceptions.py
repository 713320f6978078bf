"""Errors raised by the local stack."""

from __future__ import annotations

__all__ = ["ComponentError", "StackError"]


class StackError(RuntimeError):
    """Raise when the local stack cannot do what was asked."""


class ComponentError(StackError):
    """Raise when one component fails to install, start or answer; carry its log tail."""

    def __init__(self, component: str, message: str, log_tail: str = "") -> None:
        super().__init__(f"{component}: {message}")
        self.component = component
        self.message = message
        self.log_tail = log_tail
