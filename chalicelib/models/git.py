"""Git refs of project repositories (objects live in S3 under git/<project_id>/).

Access patterns:
- one ref (the default branch on every API commit): GetItem gitrefs[project_id, ref]
- all refs of a project (ref advertisement): Query gitrefs[project_id]
- move a ref: PutItem with a condition on the current target (compare-and-swap)
"""

from __future__ import annotations

from pynamodb.attributes import UnicodeAttribute

from chalicelib.models.base import IdAttribute, Model, table_name


class GitRef(Model):
    class Meta:
        table_name = table_name("gitrefs")

    project_id = IdAttribute(hash_key=True)
    ref = UnicodeAttribute(range_key=True)  # "refs/heads/main", "refs/tags/v1", ...
    target = UnicodeAttribute()  # 40-hex commit (or tag object) id
    updated_at = UnicodeAttribute()
