"""The password policy for local accounts: long, varied, not the user name, not a common password."""

from __future__ import annotations

import string

from soc_shared.errors import ApiError

# A small list on purpose: the obvious choices that satisfy the length and class rules.
COMMON_PASSWORDS = frozenset(
    p.lower()
    for p in (
        "Password123!",
        "Password1234",
        "Password@123",
        "P@ssw0rd1234",
        "P@ssword1234",
        "Passw0rd!234",
        "Welcome12345",
        "Welcome@1234",
        "Welcome123!",
        "Qwerty123456",
        "Qwerty@12345",
        "Admin@123456",
        "Administrator1",
        "Letmein12345",
        "Changeme1234",
        "ChangeMe123!",
        "Summer2024!!",
        "Winter2024!!",
        "Spring2025!!",
        "Autumn2025!!",
        "Iloveyou1234",
        "Football1234",
        "Monkey123456",
        "Dragon123456",
        "1234567890Ab",
        "Abcdef123456",
        "Abcd1234!@#$",
        "Secret123456",
        "Security123!",
        "SocPortal123!",
        "Soc@12345678",
        "Trustno1!234",
        "Zaq12wsxcde3",
        "1qaz2wsx3edc",
        "Q1w2e3r4t5y6",
        "Passw0rdPassw0rd",
    )
)

CLASSES = {
    "lowercase": set(string.ascii_lowercase),
    "uppercase": set(string.ascii_uppercase),
    "digit": set(string.digits),
}


def problems(password: str, *, username: str, min_length: int = 12) -> list[str]:
    """What is wrong with ``password`` (empty when it is acceptable)."""
    found: list[str] = []
    if len(password) < min_length:
        found.append(f"must be at least {min_length} characters long")
    if password.strip().lower() == username.strip().lower():
        found.append("must not be the user name")
    classes = sum(1 for chars in CLASSES.values() if any(c in chars for c in password))
    classes += any(not c.isalnum() for c in password)  # symbols, spaces, anything else
    if classes < 3:
        found.append("must mix at least 3 of: lower-case letters, upper-case letters, digits, symbols")
    if password.lower() in COMMON_PASSWORDS:
        found.append("is too common")
    return found


def check(password: str, *, username: str, min_length: int = 12) -> None:
    found = problems(password, username=username, min_length=min_length)
    if found:
        raise ApiError(
            422,
            "weak_password",
            "the password does not meet the policy: " + "; ".join(found),
            {"problems": found},
        )
