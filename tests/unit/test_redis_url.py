"""The Redis URL names a server or a Sentinel-watched primary."""

from __future__ import annotations

import pytest

from workers._redis import SentinelTarget, sentinel_target


def test_a_sentinel_url_names_the_sentinels_the_service_and_the_db() -> None:
    url = "redis+sentinel://:pw@s1:26379,s2:26380,[::1]:26381/flowgate/2"
    assert sentinel_target(url) == SentinelTarget(
        [("s1", 26379), ("s2", 26380), ("::1", 26381)], "flowgate", 2, None, "pw"
    )
    assert sentinel_target("redis+sentinel://s1:26379/mymaster").db == 0  # type: ignore[union-attr]
    assert sentinel_target("redis://127.0.0.1:6379/0") is None


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://s1:26379", "name the service"),
        ("redis+sentinel://s1/mymaster", "is not host:port"),
        ("redis+sentinel://s1:26379/mymaster/x", "is not a number"),
    ],
)
def test_a_malformed_sentinel_url_says_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        sentinel_target(url)
