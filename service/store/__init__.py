"""Everything tunegate keeps in Redis, behind one facade.

Only this package imports `redis`. Every key is built in `service.store.keys` under the `tg:`
prefix; every value is JSON. A Redis failure surfaces as `service.errors.Unavailable` (503), never
as a hang: connections carry short timeouts.
"""

from __future__ import annotations

from service.store.base import close_redis, connect_redis
from service.store.budgets import BudgetRepository
from service.store.datasets.copies import CopyRepository
from service.store.datasets.files import FileRepository
from service.store.evals import EvalRepository, RunRepository
from service.store.inference.models import VIEW_TTL_SECONDS, ModelRepository
from service.store.inference.ratelimit import RateLimitRepository
from service.store.inference.responses import ResponseRepository
from service.store.inference.usage import UsageRepository
from service.store.jobs import JobRepository
from service.store.sweeps import SweepRepository
from service.store.tenancy.audit import AuditRepository
from service.store.tenancy.orgs import TenancyRepository
from service.store.tenancy.sessions import SessionRepository
from service.store.upstream_rate import UpstreamRateRepository
from service.store.webhooks import WebhookRepository
from service.store.workers import WorkerRepository

__all__ = ["Store", "close_redis", "connect_redis"]


class Store:
    def __init__(self, redis_url: str, view_seconds: float = VIEW_TTL_SECONDS) -> None:
        self.redis = connect_redis(redis_url)
        self.models = ModelRepository(self.redis, view_seconds)
        self.tenancy = TenancyRepository(self.redis, on_change=self.models.forget_org)
        self.audit = AuditRepository(self.redis)
        self.workers = WorkerRepository(self.redis)
        self.files = FileRepository(self.redis)
        self.copies = CopyRepository(self.redis)
        self.rate_limits = RateLimitRepository(self.redis)
        self.budgets = BudgetRepository(self.redis)
        self.usage = UsageRepository(self.redis, self.rate_limits, self.budgets)
        self.responses = ResponseRepository(self.redis)
        self.jobs = JobRepository(self.redis)
        self.webhooks = WebhookRepository(self.redis)
        self.sweeps = SweepRepository(self.redis)
        self.evals = EvalRepository(self.redis)
        self.eval_runs = RunRepository(self.redis)
        self.upstream_rate = UpstreamRateRepository(self.redis)
        self.sessions = SessionRepository(self.redis)

    async def ping(self) -> bool:
        return await self.workers.ping()

    async def aclose(self) -> None:
        await self.models.close()
        await close_redis(self.redis)
