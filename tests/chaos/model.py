"""What a chaos run is: its settings, the commands it plans, the verdict it reaches."""

from __future__ import annotations

import random
import sys
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contracts import COMMAND_TYPES
from workers.commands import COMMANDS
from workers.simulators import ROUTES

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
EVENTS_QUEUE = "chaos.events"
# "flowgate" for the commands flowgate answers itself (cancel-run): no vendor, no trigger.
VENDOR_OF = {t: v.name if (v := COMMANDS[t].vendor) else "flowgate" for t in COMMANDS}
# Connections whose policy is `unknown_outcome = fail`: a second trigger is a bug. Every
# vendor's default, TMF622's included (its document never says it deduplicates on
# X-Correlation-ID); a vendor left out would have its repeats counted as deduplicated retries.
FAIL_POLICY = {"pbsm", "informatica", "robusta", "tmf622", "productlive"}
# Per command type: the simulator route that starts its vendor run, and where that request
# names the command's business key (a header, or a field of the JSON body).
TRIGGER_ROUTE: dict[str, tuple[str, str]] = {
    "trigger-batch": ("pbsm.trigger", "batchName"),
    "rerun-batch": ("pbsm.rerun", "batchRunId"),
    "interrupt-batch": ("pbsm.interrupt", "batchRunId"),
    "restart-batch": ("pbsm.restart", "batchRunId"),
    "run-partner": ("informatica.run", "partnerName"),
    "start-process": ("robusta.start", "name"),
    "add-paylink": ("tmf622.patch", "x-correlation-id"),
    # A dotted path reads inside the body (list items by index).
    "run-job": ("productlive.job_create", "input.name"),
    "invite-partners": ("productlive.job_create", "input.operations.0.key"),
    # `header:<name>` reads a request header; `path` the path's last segment.
    "generate-report": ("pbsm.repgen", "header:reportcode"),
    "export-objects": ("pbsm.export", "path"),
    "import-objects": ("pbsm.import", "path"),
    "request-upload-url": ("pbsm.upload_url", "fileName"),
}
# Command types left out of the plan: their vendor request names no key of the command's
# own (a download URL for a file the simulator holds, the listing), so the ledger cannot tell
# one command's request from another's. Both only read.
UNTRACED = {"request-download-url", "list-files"}
# The simulator's echo job, which `run-job` commands run.
ECHO_JOB = "65819ba43ad5b963658ab35d"
# Every route the chaos commands use.
FAULT_ROUTES = tuple(ROUTES)
TERMINAL = {"succeeded", "failed", "cancelled"}


@dataclass
class ChaosConfig:
    n: int = 2000
    seed: int = 1
    workers: int = 2
    pollers: int = 1
    kill_every: float = 3.0  # mean seconds between SIGKILLs (exponential); 0: none
    broker_restart: bool = True
    # On scripts/cluster's three nodes; instead of one broker restart, kill -9 a node every
    # `node_kill_every` s on average (the one a process is on, the leader of a command queue,
    # the leader of the poll queue, in turn) and start it again (0: no node kills).
    cluster: bool = False
    node_kill_every: float = 30.0
    # On a Redis of its own (a primary, a replica, three sentinels: tests/sentinel.py) instead
    # of the shared one: every `redis_failover_every` s or so the primary is SIGKILLed, a
    # sentinel promotes the replica and the killed server comes back as the new replica.
    # Every process's claims wait for `redis_replicas` replicas (idempotency.replicas).
    redis_failover: bool = False
    redis_failover_every: float = 6.0
    redis_replicas: int = 1
    timeout: float = 600.0  # seconds to wait for every terminal event once publishing ended
    rate: float = 100.0  # commands per second published (0: as fast as confirms allow)
    concurrency: int = 50  # publishes in flight
    run_seconds: float = 0.5  # how long a simulated vendor run takes
    client_timeout: float = 1.0  # FLOWGATE_<VENDOR>__DEFAULT__TIMEOUT
    slow_latency: float = 1.5  # latency of a "too slow" answer (past client_timeout)
    p503: float = 0.10
    p429: float = 0.05
    retry_after: float = 0.5
    pslow: float = 0.02
    expire_every: float = 5.0  # mean seconds between early PBSM token expiries
    p_vendor_fail: float = 0.03  # commands scripted to end as a failed run
    p_invalid: float = 0.01  # commands that break a rule (failed/invalid + dead letter)
    # Commands on the connection `moving`, which every process loses (renamed `moved`) at a
    # random moment mid-run: each still gets exactly one terminal event, whatever it is.
    p_moving: float = 0.03
    rename: bool = True
    prefetch: int | None = None  # worker/poller prefetch; None = flowgate's default
    # Product-Live's account limit, flowgate's setting and the simulator's alike: high enough
    # for the run to finish, low enough that commands wait for it (and are killed waiting).
    productlive_limit: int = 100
    productlive_window: float = 5.0
    drain_timeout: float = 120.0
    log_dir: Path | None = None
    progress: Callable[[str], None] | None = None
    # Seconds between samples of every process's memory and file descriptors, Redis's memory
    # and the queue depths (the soak, scripts/soak); None: no sampling.
    sample_every: float | None = None
    # idempotency.retention of every process (None: flowgate's default, 7 days). The soak
    # shortens it so the store reaches its steady state inside the run.
    retention: float | None = None


@dataclass
class ChaosResult:
    published: int = 0
    publish_retries: int = 0
    terminal: int = 0
    lost: list[str] = field(default_factory=list)
    terminal_kinds: Counter[str] = field(default_factory=Counter)
    duplicate_triggers: dict[str, int] = field(default_factory=dict)  # fail-policy cmd -> n
    deduplicated_paylink_retries: int = 0
    conflicting: dict[str, list[str]] = field(default_factory=dict)
    wrong_outcome: dict[str, str] = field(default_factory=dict)
    dead_letters: int = 0
    dead_letter_kinds: Counter[str] = field(default_factory=Counter)
    dead_lettered: set[str] = field(default_factory=set)  # command ids found in dead letters
    # Commands answered failed (rejected/exhausted/unknown_outcome) with no dead letter kept.
    missing_dead_letters: list[str] = field(default_factory=list)
    unexpected_events: int = 0
    duplicate_events: int = 0
    kills: int = 0
    broker_restarts: int = 0
    node_kills: dict[str, int] = field(default_factory=dict)
    # Redis failovers done (--redis-failover): seconds from each kill until the new primary
    # was named, and until it had a synced replica again (claims that wait for one go
    # through from then on).
    redis_failovers: list[tuple[float, float]] = field(default_factory=list)
    redis_replicas: int | None = None  # idempotency.replicas of the run, when on its own Redis
    # Commands the store's outages sent round the delay queues (store_unavailable), before and
    # after the vendor answered their trigger; why those answered unknown_outcome were (see
    # `evidence.tally_unknowns`), and for the store's share how many triggers the vendor saw
    # (0: it refused the call or was never called, but the claim could not be released).
    store_parked: Counter[str] = field(default_factory=Counter)
    unknown_causes: Counter[str] = field(default_factory=Counter)
    store_unknown_triggers: Counter[int] = field(default_factory=Counter)
    renames: int = 0
    token_expiries: int = 0
    queues_left: dict[str, int] = field(default_factory=dict)
    handler_errors: int = 0
    # Product-Live requests in the busiest window (the simulator's ledger), and the limit.
    rate_peak: int = 0
    rate_limit: int = 0
    elapsed: float = 0.0
    log_dir: str = ""
    samples: list[dict[str, float]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not self.lost
            and not self.duplicate_triggers
            and not self.conflicting
            and not self.queues_left
            and self.rate_peak <= self.rate_limit
        )

    def summary(self) -> str:
        kinds = ",".join(f"{k}:{v}" for k, v in sorted(self.terminal_kinds.items()))
        dead = ",".join(f"{k}:{v}" for k, v in sorted(self.dead_letter_kinds.items()))
        left = sum(self.queues_left.values())
        node_kills = ""
        if self.node_kills:
            kills = ",".join(f"{k}:{v}" for k, v in sorted(self.node_kills.items()))
            node_kills = f"node_kills={kills} "
        redis = ""
        if self.redis_replicas is not None:
            promoted = ",".join(f"{p:.1f}" for p, _ in self.redis_failovers) or "-"
            replicated = ",".join(f"{r:.1f}" for _, r in self.redis_failovers) or "-"
            causes = ",".join(f"{k}:{v}" for k, v in sorted(self.unknown_causes.items()))
            triggers = ",".join(f"{k}:{v}" for k, v in sorted(self.store_unknown_triggers.items()))
            redis = (
                f"redis_failovers={len(self.redis_failovers)} "
                f"redis_replicas={self.redis_replicas} redis_promoted_s={promoted} "
                f"redis_replicated_s={replicated} "
                f"store_parked=before_trigger:{self.store_parked['before_trigger']},"
                f"after_trigger:{self.store_parked['after_trigger']} "
                f"unknown_outcome_causes={causes or '-'} "
                f"store_unknown_triggers={triggers or '-'} "
            )
        return (
            f"chaos: published={self.published} terminal={self.terminal} lost={len(self.lost)} "
            f"duplicate_triggers={len(self.duplicate_triggers)} "
            f"deduplicated_paylink_retries={self.deduplicated_paylink_retries} "
            f"conflicting_terminals={len(self.conflicting)} dead_letters={self.dead_letters} "
            f"unexpected_events={self.unexpected_events} "
            f"duplicate_events={self.duplicate_events} kills={self.kills} "
            f"broker_restarts={self.broker_restarts} renames={self.renames} "
            f"{node_kills}{redis}"
            f"token_expiries={self.token_expiries} "
            f"queues_left={left} elapsed={self.elapsed:.0f}s "
            f"terminal_kinds={kinds or '-'} dead_letter_kinds={dead or '-'} "
            f"publish_retries={self.publish_retries} handler_errors={self.handler_errors} "
            f"wrong_outcomes={len(self.wrong_outcome)} "
            f"missing_dead_letters={len(self.missing_dead_letters)} "
            f"productlive_peak={self.rate_peak}/{self.rate_limit} "
            f"verdict={'PASS' if self.ok else 'FAIL'}"
        )

    def details(self, limit: int = 10) -> str:
        lines = []
        if self.lost:
            lines.append(f"lost ({len(self.lost)}): {', '.join(self.lost[:limit])}")
        for cid, count in list(self.duplicate_triggers.items())[:limit]:
            lines.append(f"duplicate trigger: {cid} triggered {count} times")
        for cid, kinds in list(self.conflicting.items())[:limit]:
            lines.append(f"conflicting terminals: {cid}: {kinds}")
        for cid, what in list(self.wrong_outcome.items())[:limit]:
            lines.append(f"unexpected outcome: {cid}: {what}")
        if self.queues_left:
            lines.append(f"queues not empty: {self.queues_left}")
        if self.missing_dead_letters:
            missing = ", ".join(self.missing_dead_letters[:limit])
            lines.append(
                f"failed without a dead letter ({len(self.missing_dead_letters)}): {missing}"
            )
        lines.append(f"process logs: {self.log_dir}")
        return "\n".join(lines)


@dataclass
class Planned:
    id: str
    type: str
    data: dict[str, Any]
    expect: str  # "any" | "vendor_failed" | "invalid" | "moving" (any single terminal event)
    key: str  # the business key the vendor's trigger request carries (TRIGGER_ROUTE)
    connection: str | None = None
    name: str = ""  # the batch, partner or process name a scripted outcome is set on


def history_run(command_id: str) -> str:
    """The PBSM run (seeded in the simulator) a rerun, restart or interrupt command acts on."""
    return f"CHAOS-{command_id}_2026-11-21_1_1"


# Seeded PBSM runs' statusCode per command type: ended in failure (rerun, restart act on
# it), ongoing until interrupted (interrupt).
HISTORY_CODE = {"rerun-batch": "-1", "restart-batch": "-1", "interrupt-batch": "2"}


def plan(cfg: ChaosConfig, rng: random.Random) -> list[Planned]:
    """N commands, the four types in turn; a few scripted to fail at the vendor or invalid."""
    types = sorted(t for t in COMMAND_TYPES if t not in UNTRACED)
    out: list[Planned] = []
    for i in range(cfg.n):
        cid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        ctype = types[i % len(types)]
        name = f"CHAOS-{cid}"
        order = f"O{cid.replace('-', '')}"
        data: dict[str, Any]
        if ctype == "trigger-batch":
            data, key = {"batch": name, "params": {"$FICMISDATE$": "2026-11-21"}}, name
        elif ctype == "run-partner":
            data, key = {"partner_name": name, "direction": "outbound"}, name
        elif ctype == "start-process":
            data, key = {"process_name": name, "values": {"n": i}}, name
        elif ctype in HISTORY_CODE:
            key = history_run(cid)
            data = {"batch": name, "batch_run_id": key}
        elif ctype == "run-job":
            data, key = {"job_id": ECHO_JOB, "input": {"name": name, "n": i}}, name
        elif ctype == "invite-partners":
            invitation = {"key": name, "to_account_name": name, "to_user_email": f"{i}@chaos.test"}
            data, key = {"operations": [invitation]}, name
        elif ctype == "generate-report":
            data, key = {"report_code": name}, name
        elif ctype in ("export-objects", "import-objects"):
            data, key = {"code": name}, name
        elif ctype == "request-upload-url":
            key = f"{name}.csv"
            data = {"file_name": key, "file_size": 10 + i, "mime_type": "text/csv"}
        elif ctype == "cancel-run":
            # Cancels a batch run planned a little earlier: it lands while that run goes on,
            # or after it ended (rejected), or before it was triggered (rejected).
            earlier = [c for c in out[-40:] if c.type == "trigger-batch"]
            target = rng.choice(earlier).id if earlier else cid
            data, key = {"command_id": target}, cid
        else:
            data = {"business_id": "PR", "order_id": order, "payment_link": f"https://p/{i}"}
            key = order
        expect = "any"
        draw = rng.random()
        if draw < cfg.p_invalid:
            expect = "invalid"
            if ctype == "add-paylink":
                data["business_id"] = "P R"  # breaks the pattern
            elif ctype == "trigger-batch":
                data["group"] = True  # params without group_params
            elif ctype == "run-partner":
                data["partner_name"] = f"<{name}>"
            elif ctype in HISTORY_CODE:
                data["batch_run_id"] = ""
            elif ctype == "run-job":
                data["job_key"] = "nightly"  # with job_id: one of them, not both
            elif ctype == "invite-partners":
                data["operations"] = data["operations"] * 2  # a duplicate key
            elif ctype == "cancel-run":
                data["command_id"] = ""
            elif ctype == "generate-report":
                data["report_code"] = "two words"
            elif ctype in ("export-objects", "import-objects"):
                data["code"] = "a/b"
            elif ctype == "request-upload-url":
                data["file_name"] = f"-{name}.csv"  # must start with a letter or digit
            else:
                data["schedule"] = {"quartz_cron": ""}
        elif draw < cfg.p_invalid + cfg.p_vendor_fail and ctype not in NO_RUN:
            expect = "vendor_failed"
        elif draw < cfg.p_invalid + cfg.p_vendor_fail + cfg.p_moving:
            expect = "moving"
        connection = MOVING if expect == "moving" else None
        out.append(Planned(cid, ctype, data, expect, key, connection, name))
    return out


# Command types with no vendor run of their own to script a failure on: an interrupt's answer
# is final (an upload URL's too), a cancel-run acts on another command's run.
NO_RUN = {"interrupt-batch", "cancel-run", "request-upload-url"}

# The connection that is renamed mid-run, and its name after.
MOVING, MOVED = "moving", "moved"

FAILED_STATUS = {
    "pbsm": "FAILED",
    "informatica": "Error",
    "robusta": "FAILED",
    "tmf622": "400",  # a synchronous refusal: failed/rejected
    "productlive": "FAILED",
}
