"""flowgate's wire contract: command and event models and the CloudEvents envelope.

Imports nothing from `workers`: any service may depend on `contracts` alone.
"""

from contracts.commands import (
    COMMAND_TYPES,
    AddPaylink,
    CancelRun,
    Command,
    GroupBatchParams,
    InterruptBatch,
    InvitePartners,
    PartnerInvitation,
    ProcessSchedule,
    RerunBatch,
    RestartBatch,
    RunJob,
    RunPartner,
    StartProcess,
    TriggerBatch,
)
from contracts.envelope import (
    EVENT_CONTENT_TYPE,
    TYPE_PREFIX,
    CommandEnvelope,
    ContractError,
    InputLimits,
    decode_command,
    encode_command,
    encode_event,
    event_id,
)
from contracts.events import TERMINAL_KINDS, ErrorInfo, ErrorKind, EventData, EventKind

__all__ = [
    "COMMAND_TYPES",
    "EVENT_CONTENT_TYPE",
    "TERMINAL_KINDS",
    "TYPE_PREFIX",
    "AddPaylink",
    "CancelRun",
    "Command",
    "CommandEnvelope",
    "ContractError",
    "ErrorInfo",
    "ErrorKind",
    "EventData",
    "EventKind",
    "GroupBatchParams",
    "InputLimits",
    "InterruptBatch",
    "InvitePartners",
    "PartnerInvitation",
    "ProcessSchedule",
    "RerunBatch",
    "RestartBatch",
    "RunJob",
    "RunPartner",
    "StartProcess",
    "TriggerBatch",
    "decode_command",
    "encode_command",
    "encode_event",
    "event_id",
]
