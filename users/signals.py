"""Reactions to changes of a user: a new password revokes every API token of the user.

``User.set_password`` (or ``set_unusable_password``) marks the instance; once the
new password is saved (any save that writes the ``password`` column: the admin,
``changepassword``, the services) all of the user's API tokens are deleted. A
hash upgrade at sign-in is no change; a password written without those methods
(a queryset ``update()``) does not revoke them.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save

from users.models import User
from users.services import accounts


def revoke_tokens_on_password_change(
    sender: type[User], instance: User, created: bool, update_fields: Any = None, **kwargs: Any
) -> None:
    if not instance.password_changed or (update_fields is not None and "password" not in update_fields):
        return
    instance.password_disabled = False
    if not created:
        accounts.auth_tokens_revoke_all(user_id=instance.pk)


def connect() -> None:
    post_save.connect(
        revoke_tokens_on_password_change, sender=User, dispatch_uid="users.revoke_tokens_on_password_change"
    )
