"""User rules: what the directory knows of the account (privilege, role, state, watch lists)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from fido._assessment import Contribution, Dimension
from fido.scoring._context import Context, canonical, contribution, printable

if TYPE_CHECKING:
    from fido._entities import User
    from fido._findings import UserContext
    from fido.scoring._sections import UserPolicy, WordList

__all__ = ["group_name", "user"]

USER: Final = Dimension.USER
_CN: Final = re.compile(r"\s*cn=((?:\\.|[^,\\])*)", re.I)
_ESCAPE: Final = re.compile(r"\\(.)")


def group_name(text: str) -> str:
    """A group's name, case-folded: `CN=Domain Admins,CN=Users,DC=corp` -> `domain admins`."""
    name = text.lstrip()
    if name[:3].casefold() != "cn=":
        return text.strip().casefold()
    if "\\" not in name:  # no escaped commas: the CN ends at the first comma
        return name[3:].partition(",")[0].strip().casefold()
    match = _CN.match(text)
    if match is None:
        return text.strip().casefold()
    return _ESCAPE.sub(r"\1", match.group(1)).strip().casefold()


def _privileged(policy: UserPolicy, contexts: list[UserContext]) -> Contribution | None:
    for context in contexts:
        for group in context.groups:
            name = group_name(group)
            if name in policy.privileged_groups:
                return contribution(
                    USER,
                    policy.privileged,
                    f"member of {name}",
                    printable(context.source),
                    "user.privileged",
                )
    for context in contexts:
        if context.privileged:
            return contribution(
                USER,
                policy.privileged,
                "privileged account",
                printable(context.source),
                "user.privileged",
            )
    return None


def _watched(
    words: WordList, contexts: list[UserContext], *, title: bool, rule: str
) -> Contribution | None:
    if not words.points:
        return None
    label = "title" if title else "department"
    for context in contexts:
        text = context.title if title else context.department
        word = words.search(text)
        if word is not None:
            return contribution(
                USER,
                words.points,
                f"{label} {text!r} is watched ({word.lower()})",
                printable(context.source),
                rule,
            )
    return None


def _states(policy: UserPolicy, contexts: list[UserContext]) -> list[Contribution]:
    disabled = locked = service = None
    for c in contexts:
        if c.enabled is False and disabled is None:
            disabled = printable(c.source)
        if c.locked and locked is None:
            locked = printable(c.source)
        if c.service_account and service is None:
            service = printable(c.source)
    result = []
    for points, source, reason, rule in (
        (policy.disabled, disabled, "account is disabled, yet active", "user.disabled"),
        (policy.locked, locked, "account is locked out", "user.locked"),
        (policy.service_account, service, "a service account", "user.service_account"),
    ):
        if source is not None and points:
            result.append(contribution(USER, points, reason, source, rule))
    return result


def _user(ctx: Context, account: User) -> list[Contribution]:
    policy = ctx.policy.user
    contexts = canonical(ctx.user_contexts.get(account.key, []))
    result: list[Contribution] = []
    if contexts:
        found = (
            _privileged(policy, contexts) if policy.privileged else None,
            _watched(policy.titles, contexts, title=True, rule="user.titles"),
            _watched(policy.departments, contexts, title=False, rule="user.departments"),
        )
        result.extend(c for c in found if c is not None)
        result.extend(_states(policy, contexts))
    if policy.watch:
        names = {n for n in (account.name, account.upn, account.email) if n}
        names.update(c.email.casefold() for c in contexts if c.email)
        groups = {group_name(g) for c in contexts for g in c.groups}
        result.extend(
            contribution(
                USER, w.points, f"on watch list {w.name}", "policy", f"user.watch.{w.name}"
            )
            for w in policy.watch
            if w.points and (names & w.users or groups & w.groups)
        )
    return result


def user(ctx: Context) -> list[Contribution]:
    """The user score of the incident's most exposed account (the first, among equals)."""
    users = ctx.users
    if len(users) == 1:
        return _user(ctx, users[0])
    best: list[Contribution] = []
    best_points = -1
    for account in ctx.users:
        contributions = _user(ctx, account)
        points = sum(c.points for c in contributions)
        if points > best_points:
            best, best_points = contributions, points
    return best
