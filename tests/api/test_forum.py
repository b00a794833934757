"""The forum: categories (seeded, admin-managed), topics (pinned, locked), posts; who may do
what (anonymous, signed-in stranger, author, admin), bad input, paging, rate limits."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from chalicelib.config import reload
from tests.conftest import ROOT, Api, UserCtx, make_user, unique

F = "/api/v1/forum"


@pytest.fixture(autouse=True)
def generous_write_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The matrix writes a lot as the same users; test_writes_are_rate_limited sets its own."""
    monkeypatch.setenv("A6HUB_FORUM_MAX_WRITES", "100000")
    reload()


@pytest.fixture(scope="module")
def admin(api: Api) -> UserCtx:
    """A user made admin the only way there is: the operator's command."""
    user = make_user(api)
    run = subprocess.run([sys.executable, "-m", "devstack", "admin", "--grant", user.email],
                         cwd=ROOT, env={**os.environ}, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "now a forum administrator" in run.stderr + run.stdout
    return user


def test_only_the_operator_command_makes_admins(api: Api, admin: UserCtx) -> None:
    # a user cannot make themselves admin through the API (unknown fields are refused)
    user = make_user(api)
    for path in ("/api/v1/auth/me",):
        for method in ("PUT", "PATCH"):
            reply = api.request(method, path, token=user.token, json_body={"is_admin": True})
            assert reply.status in (404, 405, 422), (method, reply.body)
    assert api.post(f"{F}/categories", token=user.token,
                    json_body={"name": "mine", "slug": unique("m-")}).status == 403
    # and the command refuses an unknown account
    run = subprocess.run([sys.executable, "-m", "devstack", "admin", "--grant", "nobody@x.test"],
                         cwd=ROOT, env={**os.environ}, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "no user" in run.stderr + run.stdout


@pytest.fixture(scope="module")
def author(api: Api) -> UserCtx:
    return make_user(api)


def new_category(api: Api, admin: UserCtx) -> dict[str, Any]:
    slug = unique("cat-")
    reply = api.post(f"{F}/categories", token=admin.token,
                     json_body={"name": f"Category {slug}", "slug": slug, "order": 50})
    assert reply.status == 201, reply.body
    return dict(reply.json)


def new_topic(api: Api, user: UserCtx, category_id: int, title: str = "A question") -> dict[str, Any]:
    reply = api.post(f"{F}/topics", token=user.token, json_body={
        "title": title, "category_id": category_id, "content": "How do I write a testbench?"})
    assert reply.status == 201, reply.body
    return dict(reply.json)


def reply_to(api: Api, user: UserCtx, topic_id: int, content: str = "Like this.") -> dict[str, Any]:
    reply = api.post(f"{F}/topics/{topic_id}/posts", token=user.token,
                     json_body={"content": content})
    assert reply.status == 201, reply.body
    return dict(reply.json)


def category_of(api: Api, category_id: int) -> dict[str, Any]:
    return next(c for c in api.get(f"{F}/categories").json if c["id"] == category_id)


def posts_of(api: Api, topic_id: int) -> list[dict[str, Any]]:
    reply = api.get(f"{F}/topics/{topic_id}/posts?limit=100")
    assert reply.status == 200, reply.body
    return list(reply.json)


def test_the_default_categories_are_seeded_once_and_read_by_anyone(api: Api) -> None:
    from chalicelib.services.forum import DEFAULT_CATEGORIES, seed_categories

    # WHEN anyone lists the categories (the first read seeds an empty forum)
    reply = api.get(f"{F}/categories")
    # THEN the defaults are there, with the fields the forum page reads
    assert reply.status == 200, reply.body
    slugs = [c["slug"] for c in reply.json]
    assert {c["slug"] for c in DEFAULT_CATEGORIES} <= set(slugs)
    first = reply.json[0]
    assert first["slug"] == "general-discussion"
    assert {"id", "name", "description", "slug", "order", "icon", "topic_count", "post_count",
            "created_at", "updated_at"} <= set(first)
    assert isinstance(first["id"], int)
    # AND seeding again creates nothing: each slug exists once
    assert seed_categories() == 0
    again = [c["slug"] for c in api.get(f"{F}/categories").json]
    assert sorted(again) == sorted(set(again)) == sorted(slugs)


def test_a_topic_with_replies_reads_as_the_pages_expect(api: Api, admin: UserCtx,
                                                        author: UserCtx, stranger: UserCtx) -> None:
    category = new_category(api, admin)
    # WHEN a user opens a topic and another replies
    topic = new_topic(api, author, category["id"], "Blocking vs non-blocking")
    assert topic["category_name"] == category["name"]
    assert topic["author_username"] == author.username and topic["slug"] == "blocking-vs-non-blocking"
    assert topic["is_pinned"] is False and topic["is_locked"] is False and topic["post_count"] == 1
    post = reply_to(api, stranger, topic["id"])
    assert post["author_username"] == stranger.username and post["is_edited"] is False
    # THEN the topic page shows both posts in order, and counts views
    posts = posts_of(api, topic["id"])
    assert [p["author_username"] for p in posts] == [author.username, stranger.username]
    assert posts[0]["content"] == "How do I write a testbench?"
    seen = [api.get(f"{F}/topics/{topic['id']}").json["views_count"] for _ in range(2)]
    assert seen[1] == seen[0] + 1 >= 2
    # AND the category page lists it with its counts, and the category counts both
    listed = api.get(f"{F}/categories/{category['id']}/topics?limit=50").json
    assert [(t["id"], t["post_count"]) for t in listed] == [(topic["id"], 2)]
    assert {"title", "slug", "author_username", "is_pinned", "is_locked", "views_count",
            "created_at", "last_post_at"} <= set(listed[0])
    counts = category_of(api, category["id"])
    assert (counts["topic_count"], counts["post_count"]) == (1, 2)
    # AND the author edits their reply... no: the stranger edits theirs, marked edited
    edited = api.put(f"{F}/posts/{post['id']}", token=stranger.token,
                     json_body={"content": "Like this, with <=."})
    assert edited.status == 200 and edited.json["is_edited"] is True and edited.json["edited_at"]


def _tok(users: dict[str, UserCtx], role: str) -> str | None:
    return users[role].token if role != "anonymous" else None


ROLES = ["anonymous", "stranger", "author", "admin"]
# (method, path, the status each of ROLES gets, in that order)
TABLE = [
    ("GET", "/categories",                      (200, 200, 200, 200)),
    ("POST", "/categories",                     (401, 403, 403, 201)),
    ("PUT", "/categories/{category_id}",        (401, 403, 403, 200)),
    ("GET", "/categories/{category_id}/topics", (200, 200, 200, 200)),
    ("POST", "/topics",                         (401, 201, 201, 201)),
    ("GET", "/topics/{topic_id}",               (200, 200, 200, 200)),
    ("PUT", "/topics/{topic_id}",               (401, 403, 200, 200)),
    ("PUT", "/topics/{topic_id}#pin",           (401, 403, 403, 200)),
    ("DELETE", "/topics/{topic_id}",            (401, 403, 204, 204)),
    ("GET", "/topics/{topic_id}/posts",         (200, 200, 200, 200)),
    ("POST", "/topics/{topic_id}/posts",        (401, 201, 201, 201)),
    ("PUT", "/posts/{post_id}",                 (401, 403, 200, 403)),
    ("DELETE", "/posts/{post_id}",              (401, 403, 204, 204)),
]
CASES = [(method, path, dict(zip(ROLES, codes, strict=True))) for method, path, codes in TABLE]


def _body(method: str, template: str) -> Any:
    if template == "/categories" and method == "POST":
        slug = unique("c-")
        return {"name": slug, "slug": slug}
    if template.startswith("/categories/") and method == "PUT":
        return {"description": unique("d")}
    if template == "/topics":
        return None  # filled with the world's category id
    if template == "/topics/{topic_id}#pin":
        return {"is_pinned": True, "is_locked": True}
    if template == "/topics/{topic_id}":
        return {"title": unique("renamed ")}
    return {"content": unique("words ")}


def _snapshot(api: Api, world: dict[str, Any]) -> Any:
    topic = api.get(f"{F}/categories/{world['category_id']}/topics").json
    posts = posts_of(api, world["topic_id"]) if any(
        t["id"] == world["topic_id"] for t in topic) else None
    cats = sorted((c["id"], c["name"], c["description"], c["topic_count"], c["post_count"])
                  for c in api.get(f"{F}/categories").json)
    return ([{k: v for k, v in t.items() if k != "views_count"} for t in topic], posts, cats)


@pytest.mark.parametrize(("method", "template", "allowed"), CASES,
                         ids=[f"{m} {t}" for m, t, _ in CASES])
@pytest.mark.parametrize("role", ROLES)
def test_forum_authorisation(api: Api, admin: UserCtx, author: UserCtx, stranger: UserCtx,
                             method: str, template: str, allowed: dict[str, int],
                             role: str) -> None:
    # GIVEN a category with a topic by `author` and a reply by `author`
    users = {"admin": admin, "author": author, "stranger": stranger}
    category = new_category(api, admin)
    topic = new_topic(api, author, category["id"])
    post = reply_to(api, author, topic["id"])
    world = {"category_id": category["id"], "topic_id": topic["id"], "post_id": post["id"]}
    path = F + template.split("#")[0].format(**world)
    body = _body(method, template)
    if template == "/topics":
        body = {"title": "t", "category_id": category["id"], "content": "c"}
    before = _snapshot(api, world)
    # WHEN `role` calls the route
    reply = api.request(method, path, json_body=body, token=_tok(users, role))
    # THEN the status is the matrix's
    assert reply.status == allowed[role], (role, reply.body)
    # AND a refused write changed nothing
    if method != "GET" and reply.status >= 400:
        assert _snapshot(api, world) == before


def test_the_matrix_covers_every_forum_route(chalice_app: Any) -> None:
    registered = {(m, p) for p, methods in chalice_app.routes.items() for m in methods
                  if methods[m].view_function.__module__ == "chalicelib.api.forum"}
    covered = {(m, F + t.split("#")[0]) for m, t, _ in CASES}
    covered |= {("PATCH", p) for m, p in covered if m == "PUT"}
    assert registered == covered


def test_locked_topics_refuse_replies_and_edits_but_not_admins(
        api: Api, admin: UserCtx, author: UserCtx, stranger: UserCtx) -> None:
    category = new_category(api, admin)
    topic = new_topic(api, author, category["id"])
    post = reply_to(api, stranger, topic["id"])
    # WHEN an admin locks the topic
    locked = api.put(f"{F}/topics/{topic['id']}", token=admin.token, json_body={"is_locked": True})
    assert locked.status == 200 and locked.json["is_locked"] is True
    # THEN its author and others can neither reply nor edit nor delete their posts
    for user in (author, stranger):
        refused = api.post(f"{F}/topics/{topic['id']}/posts", token=user.token,
                           json_body={"content": "still here?"})
        assert refused.status == 403 and "locked" in refused.json["detail"]
    assert api.put(f"{F}/posts/{post['id']}", token=stranger.token,
                   json_body={"content": "x"}).status == 403
    assert api.delete(f"{F}/posts/{post['id']}", token=stranger.token).status == 403
    assert len(posts_of(api, topic["id"])) == 2
    # AND an admin still can (moderation); after unlocking, everyone can again
    reply_to(api, admin, topic["id"], "Locked: see the FAQ.")
    assert api.put(f"{F}/topics/{topic['id']}", token=admin.token,
                   json_body={"is_locked": False}).status == 200
    reply_to(api, stranger, topic["id"])
    assert len(posts_of(api, topic["id"])) == 4
    assert category_of(api, category["id"])["post_count"] == 4


def test_pinned_topics_come_first_then_latest_activity_paged_by_cursor(
        api: Api, admin: UserCtx, author: UserCtx) -> None:
    category = new_category(api, admin)
    a, b, c, d = (new_topic(api, author, category["id"], f"topic {n}") for n in "abcd")
    # GIVEN b pinned, and a replied to last
    assert api.put(f"{F}/topics/{b['id']}", token=admin.token,
                   json_body={"is_pinned": True}).status == 200
    reply_to(api, author, a["id"])
    # WHEN the category is read two at a time
    base = f"{F}/categories/{category['id']}/topics"
    first = api.get(f"{base}?limit=2")
    assert first.status == 200
    link = first.header("Link")
    assert link and 'rel="next"' in link
    second = api.get(link[1:link.index(">")])
    assert second.status == 200
    # THEN pinned first, then by latest activity, each topic once
    order = [t["id"] for t in first.json + second.json]
    assert order == [b["id"], a["id"], d["id"], c["id"]]
    assert first.json[0]["is_pinned"] is True
    # AND a cursor of another category is refused
    other = new_category(api, admin)
    cursor = link.split("cursor=")[1].split(">")[0]
    assert api.get(f"{F}/categories/{other['id']}/topics?cursor={cursor}").status == 400
    # AND posts page too, oldest first
    for n in range(3):
        reply_to(api, author, c["id"], f"reply {n}")
    page = api.get(f"{F}/topics/{c['id']}/posts?limit=3")
    nxt = page.header("Link")
    assert nxt and len(page.json) == 3
    rest = api.get(nxt[1:nxt.index(">")]).json
    assert [p["content"] for p in page.json + rest][1:] == ["reply 0", "reply 1", "reply 2"]


BAD_TOPICS = [
    ({"title": "t", "content": "c"}, 422),
    ({"title": "", "category_id": 1, "content": "c"}, 422),
    ({"title": "   ", "category_id": 1, "content": "c"}, 422),
    ({"title": "t", "category_id": "1", "content": "c"}, 422),
    ({"title": "t" * 201, "category_id": 1, "content": "c"}, 422),
    ({"title": "t", "category_id": 1, "content": ""}, 422),
    ({"title": "t", "category_id": 1, "content": "c", "is_pinned": True}, 422),
    ({"title": "t", "category_id": 999999, "content": "c"}, 404),
]


@pytest.mark.parametrize(("body", "status"), BAD_TOPICS)
def test_bad_topics_are_refused_and_nothing_is_stored(api: Api, admin: UserCtx, author: UserCtx,
                                                      body: dict[str, Any], status: int) -> None:
    category = new_category(api, admin)
    if body.get("category_id") == 1:
        body = {**body, "category_id": category["id"]}
    reply = api.post(f"{F}/topics", token=author.token, json_body=body)
    assert reply.status == status, reply.body
    assert "detail" in reply.json
    assert api.get(f"{F}/categories/{category['id']}/topics").json == []
    assert category_of(api, category["id"])["topic_count"] == 0


def test_bad_posts_and_ids_are_refused(api: Api, admin: UserCtx, author: UserCtx) -> None:
    category = new_category(api, admin)
    topic = new_topic(api, author, category["id"])
    for body in ({}, {"content": ""}, {"content": " \n"}, {"content": 5}, {"content": "x", "y": 1}):
        reply = api.post(f"{F}/topics/{topic['id']}/posts", token=author.token, json_body=body)
        assert reply.status == 422, (body, reply.body)
    assert api.post(f"{F}/topics/{topic['id']}/posts", token=author.token,
                    raw=b"{not json").status == 400
    assert len(posts_of(api, topic["id"])) == 1
    for path in (f"{F}/topics/abc", f"{F}/topics/0", f"{F}/topics/01", f"{F}/topics/99999999",
                 f"{F}/categories/x/topics", f"{F}/topics/12/posts"):
        assert api.get(path).status == 404, path
    # the first post goes only with its topic
    first = posts_of(api, topic["id"])[0]
    refused = api.delete(f"{F}/posts/{first['id']}", token=author.token)
    assert refused.status == 400 and len(posts_of(api, topic["id"])) == 1
    # a duplicate category slug is a conflict
    dup = api.post(f"{F}/categories", token=admin.token,
                   json_body={"name": "again", "slug": category["slug"]})
    assert dup.status == 409


def test_deleting_a_topic_removes_its_posts_and_counts(api: Api, admin: UserCtx,
                                                       author: UserCtx, stranger: UserCtx) -> None:
    category = new_category(api, admin)
    keep = new_topic(api, author, category["id"])
    gone = new_topic(api, stranger, category["id"])
    replies = [reply_to(api, author, gone["id"]) for _ in range(3)]
    # WHEN an admin removes the stranger's topic
    assert api.delete(f"{F}/topics/{gone['id']}", token=admin.token).status == 204
    # THEN the topic and its posts are gone and the category counts only the other topic
    assert api.get(f"{F}/topics/{gone['id']}").status == 404
    assert api.put(f"{F}/posts/{replies[0]['id']}", token=author.token,
                   json_body={"content": "x"}).status == 404
    counts = category_of(api, category["id"])
    assert (counts["topic_count"], counts["post_count"]) == (1, 1)
    assert [t["id"] for t in api.get(f"{F}/categories/{category['id']}/topics").json] == [keep["id"]]


def test_writes_are_rate_limited_per_user(api: Api, admin: UserCtx,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    category = new_category(api, admin)
    user = make_user(api)
    monkeypatch.setenv("A6HUB_FORUM_MAX_WRITES", "3")
    reload()
    topic = new_topic(api, user, category["id"])
    reply_to(api, user, topic["id"])
    reply_to(api, user, topic["id"])
    # WHEN the same user writes a fourth time within the window
    reply = api.post(f"{F}/topics/{topic['id']}/posts", token=user.token,
                     json_body={"content": "one more"})
    # THEN 429 with Retry-After, nothing stored; another user is not affected
    assert reply.status == 429 and int(reply.header("Retry-After") or 0) >= 1
    assert len(posts_of(api, topic["id"])) == 3
    reply_to(api, make_user(api), topic["id"])
