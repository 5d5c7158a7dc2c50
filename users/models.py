"""The user model: local accounts and accounts mirrored from the third-party user service."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower


class User(AbstractUser):
    """A person who can sign in, or a mirror of one from the upstream user service."""

    class Source(models.TextChoices):
        LOCAL = "local", "local"
        THIRD_PARTY = "third_party", "third party"

    # Unique case-insensitively (the constraint below), which also covers exact duplicates: a
    # second, case-sensitive unique index would only cost every insert (a sync writes thousands).
    email = models.EmailField()
    display_name = models.CharField(max_length=150, blank=True)
    # NULL, not "", for "no upstream id": the unique constraint must not see local users as equal.
    external_id = models.CharField(  # noqa: DJ001
        max_length=64, null=True, blank=True, help_text="Id in the third-party user service."
    )
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.LOCAL)
    synced_at = models.DateTimeField(null=True, blank=True)
    #: Set by the sync: the upstream's latest record of this mirror is a tombstone.
    upstream_deleted = models.BooleanField(
        default=False, help_text="The upstream user service deleted or disabled this user."
    )
    # A local decision the sync never overrides: while set, the account stays inactive.
    deactivated_at = models.DateTimeField(
        null=True, blank=True, help_text="When staff deactivated this account here (the sync keeps it off)."
    )
    deactivated_by = models.CharField(max_length=150, blank=True, help_text="Who deactivated it here.")
    #: Bumped by every save of the admin, the API and the sync: a save that read an older one is refused.
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["external_id"],
                condition=Q(external_id__isnull=False),
                name="users_user_external_id_unique",
            ),
            # One address per person, whatever its case: mail servers treat
            # Ann@x.org and ann@x.org as one. Also the index of every
            # case-insensitive email lookup (``lower(email)``).
            models.UniqueConstraint(
                Lower("email"),
                name="users_user_email_ci_unique",
                violation_error_message="A user with this email address already exists.",
            ),
        ]
        indexes = [models.Index(fields=["source", "is_active"], name="users_user_source_active")]

    # Set by set_unusable_password until saved (users.signals revokes the API tokens then, as it
    # does when a password set with set_password is saved).
    password_disabled = False

    def set_unusable_password(self) -> None:
        super().set_unusable_password()
        self.password_disabled = True

    @property
    def password_changed(self) -> bool:
        """A new password (or none) waits to be saved; Django's own marker, which a hash upgrade at
        sign-in does not set, plus :meth:`set_unusable_password`."""
        return getattr(self, "_password", None) is not None or self.password_disabled

    def __str__(self) -> str:
        return self.email or self.username

    @property
    def is_mirror(self) -> bool:
        return self.source == self.Source.THIRD_PARTY

    @property
    def locally_deactivated(self) -> bool:
        return self.deactivated_at is not None


class SyncCursor(models.Model):
    """Where an incremental sync stands in an upstream change feed (an opaque cursor, one row per feed).

    It is written in the same transaction as the changes of the page it ends,
    so the stored position always matches what the database holds.
    """

    name = models.CharField(max_length=100, primary_key=True)
    cursor = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name
