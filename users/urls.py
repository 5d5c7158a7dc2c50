"""URLs of the users API, mounted under ``/api/``."""

from django.urls import path
from rest_framework.routers import DefaultRouter

from users.views import TokenObtainView, UserViewSet

router = DefaultRouter(trailing_slash=True)
router.register("users", UserViewSet, basename="user")

urlpatterns = [
    path("auth/token/", TokenObtainView.as_view(), name="auth-token"),
    *router.urls,
]
