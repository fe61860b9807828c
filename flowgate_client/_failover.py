"""One robust AMQP connection over the nodes of a RabbitMQ cluster.

An AMQP URL may name several nodes, separated by `;` as kombu (and so Celery) read it:
`amqp://u:p@rabbit-1:5672/prod;amqp://u:p@rabbit-2:5672/prod`. aio-pika's robust connection
reconnects to its one URL only; `FailoverConnection` moves to the next URL before every
connection attempt after the first, round-robin, so when the node it is on dies it reconnects
to another one, and its robust channels re-establish every consumer there.
"""

from __future__ import annotations

from typing import Any

import aio_pika
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from yarl import URL

__all__ = ["FailoverConnection", "connect", "split_urls"]


def split_urls(url: str) -> list[str]:
    """The node URLs of a `;`-separated AMQP URL (one for a plain URL)."""
    urls = [part.strip() for part in url.split(";") if part.strip()]
    if not urls:
        raise ValueError("an AMQP URL is empty")
    return urls


class FailoverConnection(aio_pika.RobustConnection):
    """aio-pika's robust connection, trying the next node at every (re)connection attempt.

    aio-pika sets `transport` to None right before each attempt (and when closing); that is
    the moment to move on, so `transport` is a property here."""

    def __init__(self, urls: list[str], **kwargs: Any) -> None:
        self._node_urls: list[URL] = []  # read by the setter while the base class initialises
        self._turn = 0
        super().__init__(URL(urls[0]), **kwargs)
        self._node_urls = [URL(u) for u in urls]

    @property
    def transport(self) -> Any:
        return self.__dict__.get("_failover_transport")

    @transport.setter
    def transport(self, value: Any) -> None:
        if value is None and self._node_urls and self.__dict__.get("_failover_tried"):
            self._turn = (self._turn + 1) % len(self._node_urls)
            self.url = self._node_urls[self._turn]
        if value is None and self._node_urls:
            self.__dict__["_failover_tried"] = True
        self.__dict__["_failover_transport"] = value


async def connect(url: str, **kwargs: Any) -> aio_pika.abc.AbstractRobustConnection:
    """`aio_pika.connect_robust` for a URL of one node or several (`;`-separated). The first
    connection tries each node in turn and fails with the last node's error when none
    answers; after that, reconnecting goes round the nodes for as long as it takes."""
    urls = split_urls(url)
    if len(urls) == 1:
        single: aio_pika.abc.AbstractRobustConnection = await aio_pika.connect_robust(
            urls[0], **kwargs
        )
        return single
    failure: BaseException | None = None
    for first in range(len(urls)):
        connection = FailoverConnection(urls[first:] + urls[:first], **kwargs)
        try:
            await connection.connect()
        except CONNECTION_EXCEPTIONS as exc:
            failure = exc
            await connection.close()
            continue
        return connection
    assert failure is not None
    raise failure
