"""System checks that refuse configurations which cannot work."""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

KNOWN_BACKENDS = ("local", "modal")


@register(Tags.compatibility)
def check_deployment_combinations(app_configs, **kwargs):
    errors = []
    if settings.EXPORTS_BACKEND not in KNOWN_BACKENDS:
        errors.append(
            Error(
                f"EXPORTS_BACKEND={settings.EXPORTS_BACKEND!r} is not one of {', '.join(KNOWN_BACKENDS)}.",
                id="exports_project.E001",
            )
        )
    if settings.EXPORTS_BACKEND == "modal" and not settings.AWS_STORAGE_BUCKET_NAME:
        errors.append(
            Error(
                "EXPORTS_BACKEND=modal needs S3/R2 storage: Modal containers cannot read this machine's files.",
                hint="Set AWS_STORAGE_BUCKET_NAME and the other AWS_* variables.",
                id="exports_project.E002",
            )
        )
    on_this_machine = {"127.0.0.1", "localhost", "::1"}
    if settings.EXPORTS_BACKEND == "modal" and urlsplit(settings.EXPORTS_EVENTS_URL).hostname in on_this_machine:
        errors.append(
            Warning(
                f"EXPORTS_EVENTS_URL={settings.EXPORTS_EVENTS_URL!r}: Modal's containers cannot reach this machine's "
                "loopback, so every worker event is lost (jobs then end at the next look).",
                hint="Set EXPORTS_EVENTS_URL to the site's public URL, or to an empty value to turn events off.",
                id="exports_project.W001",
            )
        )
    layer_backend = settings.CHANNEL_LAYERS["default"]["BACKEND"]
    if not settings.DEBUG and layer_backend == "channels.layers.InMemoryChannelLayer":
        errors.append(
            Error(
                "With DEBUG off the in-memory channel layer would split users across processes.",
                hint="Set REDIS_URL so that every daphne process shares one channel layer.",
                id="exports_project.E003",
            )
        )
    return errors
