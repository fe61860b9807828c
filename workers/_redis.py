"""Redis connections of the idempotency store, the rate limiter and the scheduler, from one URL:
a single server, or a primary watched by Redis Sentinel.

    redis://[:password@]host:6379/0
    rediss://...                                            (TLS)
    redis+sentinel://[:password@]s1:26379,s2:26379,s3:26379/<service>[/<db>]

With Sentinel, connections ask the sentinels which server is the primary of `<service>` (the
name in `sentinel monitor`) and, after a failover, find the new one (redis-py's Sentinel
support). The password is the primary's; the sentinels are asked without one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    import redis as redis_sync
    import redis.asyncio as redis_async

__all__ = [
    "SENTINEL_SCHEME",
    "SentinelTarget",
    "async_pool",
    "check_url",
    "close_sentinels",
    "sentinel_target",
    "sync_client",
]

SENTINEL_SCHEME = "redis+sentinel"
# What redis-py's from_url reads, and ours.
SCHEMES = ("redis", "rediss", "unix", SENTINEL_SCHEME)


@dataclass(frozen=True)
class SentinelTarget:
    sentinels: list[tuple[str, int]]
    service: str
    db: int
    username: str | None
    password: str | None


def sentinel_target(url: str) -> SentinelTarget | None:
    """What a `redis+sentinel://` URL names; None for any other URL. ValueError when it is
    malformed, saying what is missing."""
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        return None
    hosts = parts.netloc.rsplit("@", 1)[-1]
    sentinels = []
    for host in hosts.split(","):
        name, _, port = host.strip().rpartition(":")
        if not name or not port.isdigit():
            raise ValueError(f"{SENTINEL_SCHEME} URL: {host!r} is not host:port of a sentinel")
        sentinels.append((name.strip("[]"), int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError(f"{SENTINEL_SCHEME} URL: name the service after the hosts (/mymaster)")
    db = path[1] if len(path) > 1 else "0"
    if not db.isdigit():
        raise ValueError(f"{SENTINEL_SCHEME} URL: the database {db!r} is not a number")
    return SentinelTarget(
        sentinels,
        unquote(path[0]),
        int(db),
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
    )


def check_url(url: str) -> None:
    """ValueError saying what is wrong with `url`, without repeating it (it may hold a
    password): a scheme redis-py cannot read, or a malformed `redis+sentinel://` URL."""
    scheme = urlsplit(url).scheme if "://" in url else ""
    if scheme not in SCHEMES:
        known = ", ".join(f"{s}://" for s in SCHEMES[:-1]) + f" or {SCHEMES[-1]}://"
        raise ValueError(
            f"a Redis URL starts with {known}, not {scheme}://"
            if scheme
            else f"a Redis URL starts with {known}; this one has no scheme"
        )
    sentinel_target(url)


def async_pool(url: str, **kwargs: Any) -> redis_async.ConnectionPool:
    """A connection pool for `url` (see the module docstring); `kwargs` go to each connection
    (timeouts, `decode_responses`) and the pool (`max_connections`)."""
    import redis.asyncio as redis
    from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

    target = sentinel_target(url)
    if target is None:
        return redis.ConnectionPool.from_url(url, **kwargs)
    timeouts = {k: v for k, v in kwargs.items() if k.startswith("socket_")}
    # redis-py's Sentinel classes carry no annotations.
    manager = Sentinel(target.sentinels, sentinel_kwargs=timeouts)  # type: ignore[no-untyped-call]
    return SentinelConnectionPool(  # type: ignore[no-untyped-call]
        target.service,
        manager,
        db=target.db,
        username=target.username,
        password=target.password,
        **kwargs,
    )


async def close_sentinels(pool: redis_async.ConnectionPool) -> None:
    """Close the connections to the sentinels a Sentinel pool asked (closing the pool closes
    only the connections to the primary)."""
    manager = getattr(pool, "sentinel_manager", None)
    for sentinel in getattr(manager, "sentinels", ()):
        await sentinel.aclose()


def sync_client(url: str, **kwargs: Any) -> redis_sync.Redis:
    """A blocking client for `url` (the scheduler's claims)."""
    import redis
    from redis.sentinel import Sentinel

    target = sentinel_target(url)
    if target is None:
        return redis.Redis.from_url(url, **kwargs)
    timeouts = {k: v for k, v in kwargs.items() if k.startswith("socket_")}
    manager = Sentinel(target.sentinels, sentinel_kwargs=timeouts)  # type: ignore[no-untyped-call]
    client: redis.Redis = manager.master_for(  # type: ignore[no-untyped-call]
        target.service,
        db=target.db,
        username=target.username,
        password=target.password,
        **kwargs,
    )
    return client
