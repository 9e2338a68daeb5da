from django.apps import AppConfig


class ModalJobsConfig(AppConfig):
    """Registered so Django finds its tests and commands; the package itself imports no Django."""

    name = "modal_jobs"
    verbose_name = "Executors"
