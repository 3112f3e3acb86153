"""The rule every bearer token of the platform follows, and its constant-time check.

The service's admin token and the controller's webhook token are refused outside dev mode when
they are a placeholder or short, with the same message, and compared in constant time.
"""

from __future__ import annotations

import hmac
from typing import Final

__all__ = [
    "MIN_TOKEN_LENGTH",
    "PLACEHOLDER_TOKENS",
    "is_placeholder",
    "placeholder_error",
    "token_matches",
]

PLACEHOLDER_TOKENS: Final = frozenset(
    {"", "changeme", "change-me", "changethis", "change-this", "secret", "admin", "token", "dev"}
)
"""Tokens that are refused outside dev mode, whatever their length."""
MIN_TOKEN_LENGTH: Final = 16


def is_placeholder(token: str) -> bool:
    """Whether ``token`` is one a deployment must not use (a placeholder, or too short)."""
    return token.lower() in PLACEHOLDER_TOKENS or len(token) < MIN_TOKEN_LENGTH


def placeholder_error(variable: str, escape: str) -> str:
    """The message that refuses a placeholder ``variable``; ``escape`` says how else to start."""
    return (
        f"{variable} must be a secret of at least {MIN_TOKEN_LENGTH} characters outside dev "
        "mode, not a placeholder; generate one with "
        f"`python -c 'import secrets; print(secrets.token_urlsafe(32))'` {escape}"
    )


def token_matches(presented: str, expected: str) -> bool:
    """Compare a presented bearer token with the expected one in constant time.

    Constant time: the comparison must not reveal how many leading characters were right.
    """
    return hmac.compare_digest(presented.encode(), expected.encode())
