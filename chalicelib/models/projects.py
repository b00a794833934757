"""Projects and their members.

Access patterns:
- project by id: GetItem projects[id]
- public projects, newest first: Query projects.public_feed["public"] descending on id (ids
  are time-ordered, chalicelib/ids.py); the index is sparse, private projects carry no `feed` attribute
- member of a project: GetItem members[project_id, user_id]
- members of a project: Query members[project_id]
- projects of a user (owned and shared): Query members.by_user[user_id] + BatchGet projects
- star of a user on a project: GetItem / conditional Put / Delete stars[project_id, user_id],
  in one transaction with the project's `stars_count`; a project's stars (to delete them with
  it): Query stars[project_id]
- views: `views_count` on the project, moved at most once per viewer per project per hour
  (services/views.py keeps the marks in the ratelimits table, which expires them by TTL)
"""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection

from chalicelib.models.base import IdAttribute, Model, table_name

PUBLIC_FEED = "public"


class PublicFeed(GlobalSecondaryIndex["Project"]):
    class Meta:
        index_name = "public_feed"
        projection = AllProjection()

    feed = UnicodeAttribute(hash_key=True)
    id = IdAttribute(range_key=True)


class Project(Model):
    class Meta:
        table_name = table_name("projects")

    id = IdAttribute(hash_key=True)
    name = UnicodeAttribute()
    slug = UnicodeAttribute()
    description = UnicodeAttribute(null=True)
    visibility = UnicodeAttribute()
    owner_id = IdAttribute()
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    feed = UnicodeAttribute(null=True)
    file_count = NumberAttribute(default=0)
    total_bytes = NumberAttribute(default=0)
    stars_count = NumberAttribute(default=0)
    views_count = NumberAttribute(default=0)
    # Bytes of job artifacts stored for the project (the runner adds, within the quota).
    artifact_bytes = NumberAttribute(null=True)
    # Bytes of git objects stored for the project (services/git/quota.py).
    git_bytes = NumberAttribute(null=True)
    # The project's webhooks, moved in the same transaction as each create and delete, so the
    # cap holds under concurrent creates (services/webhooks/manage.py). None on a project whose
    # webhooks predate the counter: the next create counts them first.
    webhook_count = NumberAttribute(null=True)
    # Set on a project created by an import (POST /projects/import): where from, the job
    # that clones it, and importing -> completed | failed (the job has the log and reason).
    import_url = UnicodeAttribute(null=True)
    import_job_id = IdAttribute(null=True)
    import_status = UnicodeAttribute(null=True)
    # Set on a fork: the project it was copied from, and the private project whose content it
    # holds (inherited along a chain of forks): only that project's owner may publish it.
    forked_from = IdAttribute(null=True)
    private_origin = IdAttribute(null=True)
    # No VersionAttribute: file writes bump the counters in place through Project(id) updates,
    # which would reset a version to 1, and project edits update only what they change.
    public_feed = PublicFeed()


class MembersByUser(GlobalSecondaryIndex["Member"]):
    class Meta:
        index_name = "by_user"
        projection = KeysOnlyProjection()

    user_id = IdAttribute(hash_key=True)
    project_id = IdAttribute(range_key=True)


class Member(Model):
    class Meta:
        table_name = table_name("members")

    project_id = IdAttribute(hash_key=True)
    user_id = IdAttribute(range_key=True)
    username = UnicodeAttribute()
    role = UnicodeAttribute()
    created_at = UnicodeAttribute()
    by_user = MembersByUser()


class Star(Model):
    """One user's star on one project (POST/DELETE /projects/{id}/star)."""

    class Meta:
        table_name = table_name("stars")

    project_id = IdAttribute(hash_key=True)
    user_id = IdAttribute(range_key=True)
    created_at = UnicodeAttribute()
