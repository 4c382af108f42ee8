"""Who sees what: the repositories a signed-in person reaches through the App's installations.

Asked of GitHub with the person's own token (GET /user/installations, then each
installation's repositories), so the dashboard shows exactly what GitHub would let them see,
and cached for a minute per token: pages and the live updates of several tabs cost GitHub
one listing a minute. A run is visible when its installation and repository are in the list;
acting on it needs write, maintain or admin there (checked again with the App before acting).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from app.runs.models import Run
from app.web.oauth import GitHubOAuth, RepoGrant

ACCESS_TTL = 60.0  # seconds a listing is trusted: access removed on GitHub ends within it
MAX_CACHED = 1024


@dataclass(frozen=True)
class Access:
    """The repositories one person reaches, by lower-cased full name."""

    grants: dict[str, RepoGrant]

    @classmethod
    def of(cls, grants: Iterable[RepoGrant]) -> Access:
        return cls({grant.full_name.lower(): grant for grant in grants})

    def grant(self, repo: str) -> RepoGrant | None:
        return self.grants.get(repo.lower())

    def sees(self, run: Run) -> bool:
        grant = self.grant(run.repo)
        return grant is not None and grant.installation_id == run.installation_id

    def can_act(self, run: Run) -> bool:
        grant = self.grant(run.repo)
        return self.sees(run) and grant is not None and grant.can_write

    @property
    def scope(self) -> list[tuple[int, str]]:
        """(installation id, lower-cased repository) pairs, for the store's queries."""
        return [(grant.installation_id, name) for name, grant in self.grants.items()]

    @property
    def repos(self) -> list[str]:
        return sorted((grant.full_name for grant in self.grants.values()), key=str.lower)


class AccessCache:
    """Access per token, fetched once per ACCESS_TTL (concurrent requests share one fetch)."""

    def __init__(
        self,
        oauth: GitHubOAuth,
        *,
        ttl: float = ACCESS_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._oauth = oauth
        self._ttl = ttl
        self._clock = clock
        self._cached: OrderedDict[str, tuple[float, Access]] = OrderedDict()
        self._loading: dict[str, asyncio.Future[Access]] = {}

    async def access(self, token: str) -> Access:
        """Raises TokenRejected (sign in again) or GitHubUnavailable."""
        key = hashlib.sha256(token.encode()).hexdigest()
        cached = self._cached.get(key)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        loading = self._loading.get(key)
        if loading is None:
            loading = asyncio.ensure_future(self._load(key, token))
            self._loading[key] = loading
            loading.add_done_callback(lambda _f: self._loading.pop(key, None))
        return await asyncio.shield(loading)

    def forget(self, token: str) -> None:
        self._cached.pop(hashlib.sha256(token.encode()).hexdigest(), None)

    async def _load(self, key: str, token: str) -> Access:
        access = Access.of(await self._oauth.repo_grants(token))
        self._cached[key] = (self._clock() + self._ttl, access)
        self._cached.move_to_end(key)
        while len(self._cached) > MAX_CACHED:
            self._cached.popitem(last=False)
        return access
