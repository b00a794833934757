"""File metadata (bodies live in S3 under keys derived from ids).

Access patterns:
- file by id: GetItem files[project_id, id]
- files of a project: Query files[project_id]
- path taken?: the guard item uniques[File.path_key(project_id, path)]
"""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, VersionAttribute

from chalicelib.models.accounts import Unique
from chalicelib.models.base import IdAttribute, Model, table_name


class File(Model):
    class Meta:
        table_name = table_name("files")

    project_id = IdAttribute(hash_key=True)
    id = IdAttribute(range_key=True)
    filename = UnicodeAttribute()
    filepath = UnicodeAttribute()
    size_bytes = NumberAttribute()
    mime_type = UnicodeAttribute()
    sha256 = UnicodeAttribute()
    s3_key = UnicodeAttribute()
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    version = VersionAttribute()

    @staticmethod
    def path_key(project_id: int, path: str) -> str:
        """The key of the `uniques` item that holds `path` of the project for one file."""
        return f"path#{project_id}#{path}"

    def path_guard(self, path: str | None = None) -> Unique:
        """The guard item of this file's path (or of `path`, for a move)."""
        return Unique(File.path_key(int(self.project_id), path or self.filepath), owner_id=self.id)
