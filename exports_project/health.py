"""
GET /healthz: is each part the service needs answering? 200 when all are, 503 otherwise.

Each check has its own deadline and reports a reason when it fails; the response
is JSON so a load balancer and an operator read the same thing.
"""

import asyncio
import logging
import time
import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from exports.executor import Budget, get_executor
from exports.storage import object_store

logger = logging.getLogger(__name__)
CHECK_DEADLINE_SECONDS = 2.0


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return connection.vendor


def check_channel_layer() -> str:
    layer = get_channel_layer()

    async def round_trip():
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "health.check"})
        return await asyncio.wait_for(layer.receive(channel), timeout=CHECK_DEADLINE_SECONDS)

    async_to_sync(round_trip)()
    return type(layer).__name__


def check_storage() -> str:
    store = object_store()
    key = f"health/{uuid.uuid4().hex}"
    store.write_bytes(key, b"ok")
    try:
        if store.read_bytes(key) != b"ok":
            raise RuntimeError("wrote an object but read back something else")
    finally:
        store.delete(key)
    return type(store).__name__


def check_executor() -> str:
    executor = get_executor()
    probe_id = "local-" + "0" * 32 if executor.name == "local" else "fc-healthcheck"
    state = executor.poll(probe_id, budget=Budget(CHECK_DEADLINE_SECONDS))
    return f"{executor.name} (answered {state.status} for a probe id)"


CHECKS = {
    "database": check_database,
    "channel_layer": check_channel_layer,
    "storage": check_storage,
    "executor": check_executor,
}


@never_cache
@require_GET
def healthz(request):
    results = {}
    for name, check in CHECKS.items():
        started = time.monotonic()
        try:
            detail = check()
        except Exception as error:  # every failure is a reason to report, none may crash the endpoint
            logger.warning("Health check %s failed: %s", name, error)
            results[name] = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        else:
            results[name] = {"ok": True, "detail": detail}
        results[name]["seconds"] = round(time.monotonic() - started, 3)
    healthy = all(result["ok"] for result in results.values())
    return JsonResponse({"status": "ok" if healthy else "failing", "checks": results}, status=200 if healthy else 503)
