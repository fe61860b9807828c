"""Deleting every Redis key under a prefix: what a bench run or a test leaves behind.

Here rather than under tests/ because the import direction is tests -> bench, never back.
"""

from __future__ import annotations

import redis.asyncio as redis

__all__ = ["delete_keys_under"]

# Per SCAN hint and per UNLINK: few round trips, yet no single command that holds Redis up.
BATCH = 1000


async def delete_keys_under(target: redis.Redis | str, prefix: str) -> None:
    """Delete every key that starts with `prefix`, through `target`: a client (left open) or
    a URL (a client of its own, closed afterwards)."""
    client = redis.Redis.from_url(target) if isinstance(target, str) else target
    try:
        batch: list[bytes | str] = []
        # Deleting while scanning is safe: SCAN still returns every key that outlives it.
        async for key in client.scan_iter(match=f"{prefix}*", count=BATCH):
            batch.append(key)
            if len(batch) >= BATCH:
                await client.unlink(*batch)
                batch.clear()
        if batch:
            await client.unlink(*batch)
    finally:
        if isinstance(target, str):
            await client.aclose()
