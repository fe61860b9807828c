"""`scripts/bench`: flowgate against a hand-written aio-pika loop and the Celery way.

Every contender gets the same vendor simulators, the same RabbitMQ and the same commands; a
terminal event on `flowgate.events` ends each command's clock. See BENCHMARKS.md.
"""
