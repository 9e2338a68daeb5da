from django.urls import path

from . import views

app_name = "exports"

urlpatterns = [
    path("videos/<int:video_id>/media/", views.working_video_media, name="working_video_media"),
]
