from django.urls import path

from . import views

app_name = "projects"

urlpatterns = [
    path("projects/", views.project_list, name="list"),
    path("projects/<int:project_id>/", views.project_detail, name="detail"),
    path("projects/<int:project_id>/clips/", views.clip_upload, name="clip_upload"),
    path("projects/<int:project_id>/clips/<int:clip_id>/media/", views.clip_media, name="clip_media"),
    path("api/projects/", views.api_project_list, name="api_list"),
    path("api/projects/<int:project_id>/", views.api_project_detail, name="api_detail"),
]
