from django.urls import path

from .consumers import ExportProgressConsumer

websocket_urlpatterns = [
    path("ws/exports/", ExportProgressConsumer.as_asgi()),
]
