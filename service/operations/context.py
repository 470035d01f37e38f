"""What an operation needs to run: settings and the store, plus the queue and the upstream
where the caller has them. Built once per process (service) or per task (workers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from service.config import Settings
from service.domain.pricing import PriceTable, load_price_table
from service.storage import ObjectStorage, open_storage
from service.store import Store


@dataclass
class Context:
    settings: Settings
    store: Store
    queue: Any = None
    upstream: Any = None
    extras: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def prices(self) -> PriceTable:
        """The packaged price table, or the operator's override (`TUNEGATE_PRICES_FILE`)."""
        return load_price_table(self.settings.prices_file)

    @cached_property
    def storage(self) -> ObjectStorage:
        """Where dataset bytes live (`TUNEGATE_STORAGE_URL`)."""
        return open_storage(self.settings.storage)

    async def aclose(self) -> None:
        if self.upstream is not None:
            await self.upstream.aclose()
        await self.store.aclose()
