"""Design units (modules, packages, interfaces, ...) extracted from a project's HDL files.

Rows are derived data: the parse of a file's current content (chalicelib/services/modules.py)
writes them; only `description` is the users' own.

Access patterns:
- module by id: GetItem modules[project_id, id]
- modules of a project (optionally filtered by type / name): Query modules[project_id] with a
  FilterExpression on `module_type` / `name_lower`, one page per request
- modules of one file (to replace them after the file changed): Query modules.by_file
  [project_id, file_key = str(file id)], strongly consistent (a local index)

Ids are integers (chalicelib.ids.new_number_id), unique by conditional write.
"""

from __future__ import annotations

from pynamodb.attributes import JSONAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.indexes import AllProjection, LocalSecondaryIndex

from chalicelib.models.base import IdAttribute, Model, table_name


class ByFile(LocalSecondaryIndex["Module"]):
    class Meta:
        index_name = "by_file"
        projection = AllProjection()

    project_id = IdAttribute(hash_key=True)
    file_key = UnicodeAttribute(range_key=True)


class Module(Model):
    class Meta:
        table_name = table_name("modules")

    project_id = IdAttribute(hash_key=True)
    id = IdAttribute(range_key=True)
    # The file's id as a string: the index key keeps one type whatever type file ids have.
    file_key = UnicodeAttribute()
    file_id = IdAttribute()
    filepath = UnicodeAttribute()
    filename = UnicodeAttribute()
    name = UnicodeAttribute()
    name_lower = UnicodeAttribute()  # for the case-insensitive `search` filter
    module_type = UnicodeAttribute()
    start_line = NumberAttribute(null=True)
    end_line = NumberAttribute(null=True)
    # {"ports": [...], "parameters": [...], "instances": [...], ...}: read whole, never queried.
    module_metadata = JSONAttribute(null=True)
    description = UnicodeAttribute(null=True)
    source_sha256 = UnicodeAttribute()  # the file content this row was extracted from
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()

    by_file = ByFile()
