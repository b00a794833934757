"""A project's git repository and everything that reads or moves it.

- `store`: objects in S3 (loose, one object per git object, through `chalicelib.storage`),
  refs in DynamoDB moved by conditional writes; `ProjectRepo` is dulwich's view of both.
- `revisions`: the one grammar for naming a commit (HEAD, main, a branch, a tag, a full or
  abbreviated sha; annotated tags peeled), used by the history routes and by jobs.
- `commits`: writing history: every files-API change becomes a commit on main
  (`record_change`), `commit_on_main`, and restores.
- `log`: reading history: the log, one commit, a file at a commit, diffs.
- `rules`: what a tree or a pushed history may hold (the files API's rules and limits).
- `sync`: the files table follows main after a push, restore, import or fork (rows through
  `services/file_rows.py`).
- `smart_http`: git's smart HTTP protocol (clone, fetch, validated pushes); `pack`: refusing a
  pack by the sizes it declares before it is inflated.
- `imports`: importing a public repository (a job run by the runner); `url_guard`: which URLs
  an import may fetch, connecting only to checked addresses (SSRF).
- `forks`: a copy of a project with its history; `job_commits`: which commit a job runs on.

Submodules are bound lazily like the other services (`from chalicelib.services.git import log`
imports `log` on its first use).
"""

from chalicelib.services import lazy_submodules

__getattr__ = lazy_submodules(__name__)
