"""Broker abstraction: the `Broker` protocol, its RabbitMQ and in-process implementations."""

from workers.broker.amqp import AmqpBroker
from workers.broker.base import (
    Binding,
    Broker,
    Delivery,
    Exchange,
    OutgoingMessage,
    PublishNotConfirmed,
    Queue,
    Topology,
    TopologyError,
)
from workers.broker.memory import MemoryBroker

__all__ = [
    "AmqpBroker",
    "Binding",
    "Broker",
    "Delivery",
    "Exchange",
    "MemoryBroker",
    "OutgoingMessage",
    "PublishNotConfirmed",
    "Queue",
    "Topology",
    "TopologyError",
]
