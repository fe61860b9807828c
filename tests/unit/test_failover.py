"""A `;`-separated AMQP URL names the nodes of a cluster: split, tried in turn, never shown with
a password."""

from __future__ import annotations

import pytest

from flowgate_client._common import reply_queue_type, url_user
from flowgate_client._failover import FailoverConnection, split_urls
from workers.cli import _redacted, _url_shown

CLUSTER = "amqp://u:pw1@r1:5672/prod; amqp://u:pw2@r2:5672/prod;amqp://u:pw3@r3:5672/prod"


def test_a_cluster_url_is_split_into_its_nodes() -> None:
    assert split_urls(CLUSTER) == [
        "amqp://u:pw1@r1:5672/prod",
        "amqp://u:pw2@r2:5672/prod",
        "amqp://u:pw3@r3:5672/prod",
    ]
    assert split_urls("amqp://h/") == ["amqp://h/"]
    with pytest.raises(ValueError, match="empty"):
        split_urls(" ; ")
    assert url_user(CLUSTER) == "u"


def test_reply_queues_are_quorum_queues_on_a_cluster() -> None:
    assert reply_queue_type(CLUSTER, None) == "quorum"
    assert reply_queue_type("amqp://h/", None) == "classic"
    assert reply_queue_type(CLUSTER, "classic") == "classic"


def test_no_node_password_is_shown() -> None:
    for text in (_redacted(CLUSTER), _url_shown(CLUSTER)):
        assert "pw" not in text
        assert text.count("amqp://") == 3
    assert _url_shown(CLUSTER).startswith("amqp://u:***@r1:5672/prod;")


async def test_each_connection_attempt_after_the_first_moves_to_the_next_node() -> None:
    connection = FailoverConnection(split_urls(CLUSTER))
    assert connection.url.host == "r1"
    tried = []
    for _ in range(4):
        connection.transport = None  # what aio-pika does before every attempt
        tried.append(connection.url.host)
    assert tried == ["r1", "r2", "r3", "r1"]
