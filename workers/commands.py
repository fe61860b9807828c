"""The command table: one registration per command type.

Everything else is derived from it: the vendors' settings sections, the worker's queues, the
adapters the registry builds, the CLI's choices, the demo's sample commands. A new command
type for an existing vendor is its handler module in the vendor's folder plus one entry here
(and its data model in `contracts.commands`, which publishers import without this package);
see docs/adding-a-command.md.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from contracts.commands import (
    AddPaylink,
    CancelRun,
    ExportObjects,
    GenerateReport,
    ImportObjects,
    InterruptBatch,
    InvitePartners,
    ListFiles,
    RequestDownloadUrl,
    RequestUploadUrl,
    RerunBatch,
    RestartBatch,
    RunJob,
    RunPartner,
    StartProcess,
    TriggerBatch,
)
from workers.cancel import CancelRunHandler
from workers.vendors import informatica, pbsm, productlive, robusta, tmf622
from workers.vendors.base import Registration, Vendor

__all__ = ["COMMANDS", "CommandTable"]


class CommandTable(Mapping[str, Registration[Any, Any]]):
    """Registrations by command type, and the vendors they use (in table order)."""

    def __init__(self, *registrations: Registration[Any, Any]) -> None:
        self._by_type: dict[str, Registration[Any, Any]] = {}
        vendors: dict[str, Vendor[Any, Any]] = {}
        for registration in registrations:
            command_type = registration.command_type
            if not command_type or command_type in self._by_type:
                raise ValueError(f"command type {command_type!r} registered twice or unnamed")
            self._by_type[command_type] = registration
            vendor = registration.vendor
            if vendor is not None and vendors.setdefault(vendor.name, vendor) is not vendor:
                raise ValueError(f"two vendors named {vendor.name!r}")
        self.vendors: tuple[Vendor[Any, Any], ...] = tuple(vendors.values())

    def __getitem__(self, command_type: str) -> Registration[Any, Any]:
        return self._by_type[command_type]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._by_type))

    def __len__(self) -> int:
        return len(self._by_type)

    def vendor(self, name: str) -> Vendor[Any, Any]:
        for vendor in self.vendors:
            if vendor.name == name:
                return vendor
        raise KeyError(name)

    def of_vendor(self, vendor: str) -> list[str]:
        return [t for t in self if (v := self[t].vendor) is not None and v.name == vendor]


COMMANDS = CommandTable(
    # Answered by flowgate itself: no vendor.
    Registration(CancelRun, None, CancelRunHandler),
    Registration(RunPartner, informatica.VENDOR, informatica.RunPartnerHandler),
    Registration(StartProcess, robusta.VENDOR, robusta.StartProcessHandler),
    Registration(AddPaylink, tmf622.VENDOR, tmf622.AddPaylinkHandler),
    Registration(TriggerBatch, pbsm.VENDOR, pbsm.TriggerBatchHandler),
    Registration(InterruptBatch, pbsm.VENDOR, pbsm.InterruptBatchHandler),
    Registration(RerunBatch, pbsm.VENDOR, pbsm.RerunBatchHandler),
    Registration(RestartBatch, pbsm.VENDOR, pbsm.RestartBatchHandler),
    Registration(GenerateReport, pbsm.VENDOR, pbsm.GenerateReportHandler),
    Registration(ExportObjects, pbsm.VENDOR, pbsm.ExportObjectsHandler),
    Registration(ImportObjects, pbsm.VENDOR, pbsm.ImportObjectsHandler),
    Registration(RequestUploadUrl, pbsm.VENDOR, pbsm.RequestUploadUrlHandler),
    Registration(RequestDownloadUrl, pbsm.VENDOR, pbsm.RequestDownloadUrlHandler),
    Registration(ListFiles, pbsm.VENDOR, pbsm.ListFilesHandler),
    Registration(RunJob, productlive.VENDOR, productlive.RunJobHandler),
    Registration(InvitePartners, productlive.VENDOR, productlive.InvitePartnersHandler),
)
