"""The sandbox's memory: one `Run` per run id, each a separate tenant.

A run owns its files, uploads, jobs, tuned models, stored responses, request log and faults, so
tests sharing one server never see each other. Everything lives on the server's event loop;
handlers touch it only between awaits, which is all the locking one loop needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from service.sandbox.config import SandboxConfig
from service.sandbox.inspection import FaultBook, RequestLog
from service.sandbox.jobs import Job, Outputs, advance
from service.sandbox.objects import StoredFile, TunedModel, Upload
from service.sandbox.responses import StoredResponse

DEFAULT_RUN = "default"


@dataclass
class Run:
    name: str
    config: SandboxConfig
    files: dict[str, StoredFile] = field(default_factory=dict)
    uploads: dict[str, Upload] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    models: dict[str, TunedModel] = field(default_factory=dict)
    responses: dict[str, StoredResponse] = field(default_factory=dict)
    faults: FaultBook = field(default_factory=FaultBook)
    log: RequestLog = field(init=False)

    def __post_init__(self) -> None:
        self.log = RequestLog(self.config.request_log_size)

    @property
    def outputs(self) -> Outputs:
        config = self.config
        return Outputs(self.files, self.models, config.organization_id, config.base64_result_files)

    def advance_all(self) -> None:
        outputs = self.outputs
        for job in self.jobs.values():
            advance(job, outputs)

    def counts(self) -> dict[str, object]:
        self.advance_all()
        files: dict[str, int] = {}
        for stored in self.files.values():
            files[stored.purpose] = files.get(stored.purpose, 0) + 1
        jobs: dict[str, int] = {}
        for job in self.jobs.values():
            status = "paused" if job.paused else job.status
            jobs[status] = jobs.get(status, 0) + 1
        return {
            "requests": self.log.counts(),
            "files": files,
            "uploads": len(self.uploads),
            "jobs": jobs,
            "models": sum(1 for model in self.models.values() if model.listed),
        }


class Sandbox:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.runs: dict[str, Run] = {}

    def run(self, name: str) -> Run:
        found = self.runs.get(name)
        if found is None:
            found = self.runs[name] = Run(name, self.config)
        return found

    def reset(self, name: str) -> None:
        self.runs.pop(name, None)
