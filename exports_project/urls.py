from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from .health import healthz

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="projects:list", permanent=False)),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("", include("projects.urls")),
    path("", include("exports.urls")),
]

handler400 = "exports_project.errors.bad_request"
handler403 = "exports_project.errors.permission_denied"
handler404 = "exports_project.errors.page_not_found"
handler500 = "exports_project.errors.server_error"
