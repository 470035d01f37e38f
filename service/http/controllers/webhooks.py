"""Webhooks: OpenAI's signed fine-tuning events in (no tunegate key: the signature is the
credential), and the org's record of its job-done callbacks."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post

from service.domain.tenancy.access import Capability
from service.http.auth import context_of, principal_of, require_org_key
from service.http.controllers.jobs import After, Limit
from service.http.schemas.jobs import WebhookDelivery, WebhookDeliveryList, WebhookReceived
from service.operations.jobs import views as job_views
from service.operations.webhooks import events as webhooks
from service.store.webhooks import DeliveryRecord


def delivery_object(record: DeliveryRecord) -> WebhookDelivery:
    return WebhookDelivery.model_validate(record.model_dump(exclude={"org_id", "body"}))


class OpenAIWebhookController(Controller):
    path = "/v1/webhooks/openai"
    tags = ["webhooks"]

    @post("/", operation_id="webhooks.openai", status_code=200)
    async def receive(self, request: Request[Any, Any, Any]) -> WebhookReceived:
        ctx, body = context_of(request), await request.body()
        job = await webhooks.receive_openai_webhook(ctx, dict(request.headers), body)
        if job is not None:
            request.state.audit_org_id = job.org_id
            request.state.audit_resource_id = job.id
        return WebhookReceived()


class WebhookDeliveriesController(Controller):
    path = "/v1/webhooks/deliveries"
    guards = [require_org_key]
    tags = ["webhooks"]
    security = [{"OrgKey": []}]
    opt = {"capability": Capability.JOBS}

    @get("/", operation_id="webhooks.deliveries.list")
    async def list_deliveries(
        self, request: Request[Any, Any, Any], after: After = None, limit: Limit = 20
    ) -> WebhookDeliveryList:
        found = await webhooks.list_deliveries(context_of(request), principal_of(request))
        items = [delivery_object(record).model_dump() for record in found]
        page, more = job_views.page(items, after, limit, lambda item: str(item["id"]))
        return WebhookDeliveryList.model_validate(job_views.id_page(page, more))
