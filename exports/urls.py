from django.urls import path

from . import api, views
from .routing import WORKER_EVENTS_ROUTE

app_name = "exports"

urlpatterns = [
    path("exports/", views.history, name="history"),
    path("exports/<uuid:job_id>/row/", views.history_row, name="history_row"),
    path("exports/notices/", views.notice_preference, name="notice_preference"),
    path("videos/<int:video_id>/media/", views.working_video_media, name="working_video_media"),
    path("videos/<int:video_id>/card/", views.working_video_card, name="working_video_card"),
    path("api/projects/<int:project_id>/exports/", api.start_export, name="api_start"),
    # Deleting projects and clips lives here: it must stop and clean up exports first.
    path("api/projects/<int:project_id>/delete/", api.delete_project, name="api_delete_project"),
    path("api/projects/<int:project_id>/clips/<int:clip_id>/delete/", api.delete_clip, name="api_delete_clip"),
    path("api/exports/active/", api.active_exports, name="api_active"),
    path("api/exports/<uuid:job_id>/", api.export_detail, name="api_detail"),
    path("api/exports/<uuid:job_id>/cancel/", api.cancel_export, name="api_cancel"),
    path("api/exports/<uuid:job_id>/retry/", api.retry_export, name="api_retry"),
    path("api/exports/<uuid:job_id>/dismiss/", api.dismiss_export, name="api_dismiss"),
    path(WORKER_EVENTS_ROUTE, api.worker_event, name="api_worker_event"),  # under daphne: routing.py
]
