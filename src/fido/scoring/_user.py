"""User rules: what the directory knows of the account (privilege, role, state, watch lists)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from fido._assessment import Contribution, Dimension
from fido.scoring._context import Context, canonical, contribution, printable

if TYPE_CHECKING:
    from fido._entities import User
    from fido._findings import UserContext
    from fido.scoring._sections import UserPolicy

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


def _source(context: UserContext) -> str:
    source = context.source
    return source if source.isprintable() else printable(source)


def _privileged(policy: UserPolicy, contexts: list[UserContext]) -> Contribution | None:
    groups = policy.privileged_groups
    for context in contexts:
        for group in context.groups:
            name = group_name(group)
            if name in groups:
                return contribution(
                    USER,
                    policy.privileged,
                    f"member of {name}",
                    _source(context),
                    "user.privileged",
                )
    for context in contexts:
        if context.privileged:
            return contribution(
                USER, policy.privileged, "privileged account", _source(context), "user.privileged"
            )
    return None


def _states(policy: UserPolicy, contexts: list[UserContext], result: list[Contribution]) -> None:
    disabled = locked = service = None
    for c in contexts:
        if c.enabled is False and disabled is None:
            disabled = c
        if c.locked and locked is None:
            locked = c
        if c.service_account and service is None:
            service = c
    if disabled is not None and policy.disabled:
        reason = "account is disabled, yet active"
        result.append(
            contribution(USER, policy.disabled, reason, _source(disabled), "user.disabled")
        )
    if locked is not None and policy.locked:
        reason = "account is locked out"
        result.append(contribution(USER, policy.locked, reason, _source(locked), "user.locked"))
    if service is not None and policy.service_account:
        points, rule = policy.service_account, "user.service_account"
        result.append(contribution(USER, points, "a service account", _source(service), rule))


def _user(ctx: Context, key: str, account: User) -> list[Contribution]:
    policy = ctx.policy.user
    contexts = ctx.user_contexts.get(key)
    result: list[Contribution] = []
    if contexts is not None:
        if len(contexts) > 1:
            contexts = canonical(contexts)
        if policy.privileged:
            found = _privileged(policy, contexts)
            if found is not None:
                result.append(found)
        # The first title (then department) with a listed word, in the contexts' order.
        for search, points, title, label, rule in ctx.compiled.watched:
            for context in contexts:
                text = context.title if title else context.department
                if text is None:
                    continue
                match = search(text)
                if match is not None:
                    reason = f"{label} {text!r} is watched ({match[0].lower()})"
                    result.append(contribution(USER, points, reason, _source(context), rule))
                    break
        for c in contexts:  # the usual single context in no such state needs no call
            if c.enabled is False or c.locked or c.service_account:
                _states(policy, contexts, result)
                break
    if policy.watch:
        names = {n for n in (account.name, account.upn, account.email) if n}
        groups: set[str] = set()
        for c in contexts or ():
            if c.email:
                names.add(c.email.casefold())
            groups.update(map(group_name, c.groups))
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
        [(key, account)] = users.items()
        return _user(ctx, key, account)
    best: list[Contribution] = []
    best_points = -1
    for key, account in users.items():
        contributions = _user(ctx, key, account)
        points = sum(c.points for c in contributions)
        if points > best_points:
            best, best_points = contributions, points
    return best
