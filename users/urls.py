"""URLs of the users API."""

urlpatterns: list = []
