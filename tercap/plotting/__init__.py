"""Figures: one function per figure, `(result, ..., ax=None) -> Axes`. The core never imports this."""

from tercap.plotting.balance import balance

__all__ = ["balance"]
