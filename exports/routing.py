"""Websocket routes; the progress consumer is added with live progress."""

websocket_urlpatterns = []
