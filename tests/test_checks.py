"""System checks refuse configurations that cannot work."""

import pytest

from exports_project.checks import check_deployment_combinations


@pytest.fixture(autouse=True)
def embedded_default(settings):
    settings.DEBUG = True
    settings.EXPORTS_BACKEND = "local"
    settings.AWS_STORAGE_BUCKET_NAME = ""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def error_ids(errors):
    return sorted(error.id for error in errors)


def test_the_embedded_default_passes(settings):
    assert check_deployment_combinations(None) == []


def test_the_modal_backend_needs_object_storage(settings):
    settings.EXPORTS_BACKEND = "modal"
    settings.AWS_STORAGE_BUCKET_NAME = ""
    assert error_ids(check_deployment_combinations(None)) == ["exports_project.E002"]
    settings.AWS_STORAGE_BUCKET_NAME = "exports"
    assert check_deployment_combinations(None) == []


def test_debug_off_needs_a_shared_channel_layer(settings):
    settings.DEBUG = False
    assert error_ids(check_deployment_combinations(None)) == ["exports_project.E003"]
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer"}}
    assert check_deployment_combinations(None) == []


def test_an_unknown_backend_is_refused(settings):
    settings.EXPORTS_BACKEND = "celery"
    assert error_ids(check_deployment_combinations(None)) == ["exports_project.E001"]
