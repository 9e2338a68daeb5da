from django.urls import path

from .consumers import ExportProgressConsumer, WorkerEventConsumer

# The workers' events, served by a consumer under daphne and by api.worker_event in Django (exports/urls.py).
WORKER_EVENTS_ROUTE = "api/exports/<uuid:job_id>/events/"

websocket_urlpatterns = [
    path("ws/exports/", ExportProgressConsumer.as_asgi()),
]

http_urlpatterns = [
    path(WORKER_EVENTS_ROUTE, WorkerEventConsumer.as_asgi()),
]
