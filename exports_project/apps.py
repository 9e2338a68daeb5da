from django.apps import AppConfig


class ExportsProjectConfig(AppConfig):
    name = "exports_project"
    verbose_name = "Exports service"

    def ready(self):
        from . import checks  # noqa: F401  (registers the system checks)
