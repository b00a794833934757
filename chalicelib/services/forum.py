"""The forum: anyone reads; signed-in users open topics and reply; authors edit and delete their
own; admins (`User.is_admin`, set by an operator) manage categories, pin, lock and remove.

Writes are limited per user (A6HUB_FORUM_MAX_WRITES, default 20 per A6HUB_FORUM_WINDOW_SECONDS,
default 60) with the same fixed-window counters as login attempts.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.config import get_settings
from chalicelib.errors import BadRequest, Conflict, Forbidden, NotFound, TooManyRequests
from chalicelib.ids import new_number_id, with_new_id
from chalicelib.models.accounts import Unique
from chalicelib.models.base import condition_failed, transaction_connection, utcnow_iso
from chalicelib.models.forum import BOARD, ForumCategory, ForumPost, ForumTopic, listing_key
from chalicelib.schemas.forum import (
    CategoryCreate,
    CategoryPublic,
    CategoryUpdate,
    PostCreate,
    PostPublic,
    PostUpdate,
    TopicCreate,
    TopicListItem,
    TopicPublic,
    TopicUpdate,
)
from chalicelib.services import ratelimit
from chalicelib.services.identity import Caller
from chalicelib.services.paging import Page, decode_cursor, page_of

MAX_CATEGORIES = 100  # the category list is one Query, read whole

#: The categories a new installation starts with (upstream's scripts/seed_forum_categories.py).
DEFAULT_CATEGORIES: tuple[dict[str, Any], ...] = (
    {"name": "General Discussion", "slug": "general-discussion", "order": 1,
     "icon": "MessageSquare",
     "description": "Talk about anything related to chip design, hardware, and electronics"},
    {"name": "Design Help", "slug": "design-help", "order": 2, "icon": "HelpCircle",
     "description": "Get help with your chip designs, HDL code, and design challenges"},
    {"name": "Show & Tell", "slug": "show-and-tell", "order": 3, "icon": "Star",
     "description": "Share your completed projects, designs, and achievements"},
    {"name": "Simulation & Verification", "slug": "simulation-verification", "order": 4,
     "icon": "Zap",
     "description": "Discuss simulation tools, testbenches, and verification methodologies"},
    {"name": "Synthesis & Physical Design", "slug": "synthesis-physical-design", "order": 5,
     "icon": "Cpu",
     "description": "Topics about RTL-to-GDSII flow, place & route, and timing closure"},
    {"name": "Tools & Resources", "slug": "tools-resources", "order": 6, "icon": "Wrench",
     "description": "Share and discuss EDA tools, PDKs, IP cores, and learning resources"},
    {"name": "Feedback & Suggestions", "slug": "feedback-suggestions", "order": 7,
     "icon": "Lightbulb", "description": "Provide feedback about a6hub and suggest new features"},
)


def _write_window(caller: Caller) -> ratelimit.Window:
    settings = get_settings()
    return ratelimit.Window(f"forum#{caller.id}", settings.forum_max_writes,
                            settings.forum_window_seconds)


def _take_write(caller: Caller) -> None:
    wait = ratelimit.acquire([_write_window(caller)])
    if wait:
        raise TooManyRequests(f"too many forum posts; try again in {wait} s", retry_after=wait)


def is_admin(caller: Caller | None) -> bool:
    return caller is not None and bool(caller.user.is_admin)


def slugify(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")[:100].strip("-") or "topic"


def _failed(e: TransactWriteError, index: int) -> bool:
    reasons = e.cancellation_reasons or []
    reason = reasons[index] if index < len(reasons) else None
    return reason is not None and reason.code == "ConditionalCheckFailed"


# -- categories ------------------------------------------------------------------------------

def category_public(c: ForumCategory) -> CategoryPublic:
    return CategoryPublic(id=int(c.id), name=c.name, description=c.description, slug=c.slug,
                          order=int(c.order or 0), icon=c.icon, created_at=c.created_at,
                          updated_at=c.updated_at, topic_count=int(c.topic_count or 0),
                          post_count=int(c.post_count or 0))


def _category_key(slug: str) -> str:
    return f"forumcat#{slug}"


def _insert_category(data: CategoryCreate) -> ForumCategory:
    """Category and its slug guard in one transaction; Conflict when the slug is taken."""
    now = utcnow_iso()

    def create(category_id: int) -> ForumCategory:
        category = ForumCategory(BOARD, category_id, name=data.name, slug=data.slug,
                                 description=data.description, order=data.order, icon=data.icon,
                                 created_at=now, topic_count=0, post_count=0)
        with TransactWrite(connection=transaction_connection()) as tx:
            tx.save(Unique(_category_key(data.slug), owner_id=category_id),
                    condition=Unique.key.does_not_exist())
            tx.save(category, condition=ForumCategory.id.does_not_exist())
        return category

    def collided(e: Exception) -> bool:
        return isinstance(e, TransactWriteError) and _failed(e, 1) and not _failed(e, 0)

    try:
        return with_new_id(create, collided)
    except TransactWriteError as e:
        if _failed(e, 0):
            raise Conflict(f"a category with the slug '{data.slug}' exists") from e
        raise


def seed_categories() -> int:
    """Create the default categories that do not exist yet (by slug); how many were created.

    Idempotent and safe to run concurrently: the slug guard lets one writer win each category.
    """
    created = 0
    for entry in DEFAULT_CATEGORIES:
        try:
            _insert_category(CategoryCreate(**entry))
            created += 1
        except Conflict:
            pass
    return created


def list_categories() -> list[CategoryPublic]:
    """Every category, by `order` then name. An empty forum is seeded on first read."""
    found = list(ForumCategory.query(BOARD, limit=MAX_CATEGORIES))
    if not found:
        seed_categories()
        found = list(ForumCategory.query(BOARD, limit=MAX_CATEGORIES, consistent_read=True))
    found.sort(key=lambda c: (int(c.order or 0), c.name))
    return [category_public(c) for c in found]


def _category(category_id: int) -> ForumCategory:
    try:
        return ForumCategory.get(BOARD, category_id)
    except ForumCategory.DoesNotExist as e:
        raise NotFound("Category not found") from e


def _require_admin(caller: Caller) -> None:
    if not is_admin(caller):
        raise Forbidden("Only forum administrators may do this")


def create_category(caller: Caller, data: CategoryCreate) -> CategoryPublic:
    _require_admin(caller)
    if ForumCategory.count(BOARD, limit=MAX_CATEGORIES) >= MAX_CATEGORIES:
        raise Conflict(f"the forum has the maximum of {MAX_CATEGORIES} categories")
    return category_public(_insert_category(data))


def update_category(caller: Caller, category_id: int, data: CategoryUpdate) -> CategoryPublic:
    _require_admin(caller)
    category = _category(category_id)
    changes = data.model_dump(exclude_unset=True)
    if changes.get("name", "") is None or changes.get("order", 0) is None:
        raise BadRequest("name and order cannot be null")
    actions: list[Action] = [getattr(ForumCategory, field).set(value) if value is not None
               else getattr(ForumCategory, field).remove() for field, value in changes.items()]
    actions.append(ForumCategory.updated_at.set(utcnow_iso()))
    try:
        category.update(actions=actions, condition=ForumCategory.id.exists())
    except UpdateError as e:
        raise NotFound("Category not found") from e
    return category_public(category)


# -- topics ----------------------------------------------------------------------------------

def topic_public(topic: ForumTopic, category_name: str) -> TopicPublic:
    return TopicPublic(**_topic_fields(topic), category_name=category_name,
                       updated_at=topic.updated_at)


def _topic_fields(t: ForumTopic) -> dict[str, Any]:
    return dict(id=int(t.id), title=t.title, slug=t.slug, category_id=int(t.category_id),
                author_id=t.author_id, author_username=t.author_username,
                is_pinned=bool(t.is_pinned), is_locked=bool(t.is_locked),
                views_count=int(t.views_count or 0), post_count=int(t.post_count or 0),
                created_at=t.created_at, last_post_at=t.last_post_at)


def _topic(topic_id: int) -> ForumTopic:
    try:
        return ForumTopic.get(topic_id)
    except ForumTopic.DoesNotExist as e:
        raise NotFound("Topic not found") from e


def create_topic(caller: Caller, data: TopicCreate) -> TopicPublic:
    """The topic and its first post, counted on the category, in one transaction."""
    category = _category(data.category_id)
    user = caller.user
    _take_write(caller)
    now = utcnow_iso()

    def create(topic_id: int) -> ForumTopic:
        # The first post's id is drawn too; a collision of either id redraws both.
        post = ForumPost(new_number_id(), topic_id=topic_id, content=data.content, author_id=user.id,
                         author_username=user.username, is_edited=False, created_at=now)
        topic = ForumTopic(topic_id, category_id=data.category_id, title=data.title.strip(),
                           slug=slugify(data.title), author_id=user.id,
                           author_username=user.username, is_pinned=False, is_locked=False,
                           views_count=0, post_count=1, first_post_id=post.id, created_at=now,
                           last_post_at=now, listing=listing_key(False, now, topic_id))
        with TransactWrite(connection=transaction_connection()) as tx:
            tx.save(topic, condition=ForumTopic.id.does_not_exist())
            tx.save(post, condition=ForumPost.id.does_not_exist())
            tx.update(ForumCategory(BOARD, data.category_id),
                      actions=[ForumCategory.topic_count.add(1), ForumCategory.post_count.add(1)],
                      condition=ForumCategory.id.exists())
        return topic

    def collided(e: Exception) -> bool:
        return isinstance(e, TransactWriteError) and (_failed(e, 0) or _failed(e, 1)) \
            and not _failed(e, 2)

    try:
        topic = with_new_id(create, collided)
    except TransactWriteError as e:
        if _failed(e, 2):
            raise NotFound("Category not found") from e
        raise
    return topic_public(topic, category.name)


def list_topics(category_id: int, limit: int, cursor: str | None) -> Page[TopicListItem]:
    """One Query page: pinned topics first, then by latest activity, newest first."""
    _category(category_id)
    start = decode_cursor(cursor, {"category_id": category_id})
    result = ForumTopic.by_category.query(category_id, scan_index_forward=False, limit=limit,
                                          page_size=limit, last_evaluated_key=start)
    return page_of(result, (TopicListItem(**_topic_fields(t)) for t in result))


def view_topic(topic_id: int) -> TopicPublic:
    """The topic, counting the view: one UpdateItem that also returns the item (no GetItem)."""
    topic = ForumTopic(topic_id)
    try:
        topic.update(actions=[ForumTopic.views_count.add(1)], condition=ForumTopic.id.exists())
    except UpdateError as e:
        if condition_failed(e):
            raise NotFound("Topic not found") from e
        raise
    return topic_public(topic, _category_name(int(topic.category_id)))


def _category_name(category_id: int) -> str:
    try:
        return str(ForumCategory.get(BOARD, category_id).name)
    except ForumCategory.DoesNotExist:
        return ""


def update_topic(caller: Caller, topic_id: int, data: TopicUpdate) -> TopicPublic:
    """The author renames; admins rename, pin and lock."""
    topic = _topic(topic_id)
    admin = is_admin(caller)
    if (data.is_pinned is not None or data.is_locked is not None) and not admin:
        raise Forbidden("Only forum administrators may pin or lock topics")
    if data.title is not None and caller.id != topic.author_id and not admin:
        raise Forbidden("Only the topic's author may change it")
    now = utcnow_iso()
    actions: list[Action] = [ForumTopic.updated_at.set(now)]
    if data.title is not None:
        actions += [ForumTopic.title.set(data.title.strip()),
                    ForumTopic.slug.set(slugify(data.title))]
    pinned = bool(topic.is_pinned) if data.is_pinned is None else data.is_pinned
    if data.is_pinned is not None:
        actions.append(ForumTopic.is_pinned.set(data.is_pinned))
    if data.is_locked is not None:
        actions.append(ForumTopic.is_locked.set(data.is_locked))
    actions.append(ForumTopic.listing.set(listing_key(pinned, topic.last_post_at, topic_id)))
    try:
        # The listing key is derived from last_post_at: refuse if a reply moved it meanwhile.
        topic.update(actions=actions, condition=ForumTopic.last_post_at == topic.last_post_at)
    except UpdateError as e:
        if condition_failed(e):
            raise Conflict("The topic changed meanwhile; retry") from e
        raise
    return topic_public(topic, _category_name(int(topic.category_id)))


def delete_topic(caller: Caller, topic_id: int) -> None:
    """The author or an admin deletes a topic with all its posts."""
    topic = _topic(topic_id)
    if caller.id != topic.author_id and not is_admin(caller):
        raise Forbidden("Only the topic's author may delete it")
    posts = int(topic.post_count or 0)
    try:
        with TransactWrite(connection=transaction_connection()) as tx:
            tx.delete(topic, condition=ForumTopic.post_count == posts)
            tx.update(ForumCategory(BOARD, int(topic.category_id)),
                      actions=[ForumCategory.topic_count.add(-1),
                               ForumCategory.post_count.add(-posts)],
                      condition=ForumCategory.id.exists())
    except TransactWriteError as e:
        if _failed(e, 0):
            raise Conflict("The topic changed meanwhile; retry") from e
        if not _failed(e, 1):
            raise
        topic.delete()  # its category is gone: nothing to count down
    _delete_posts_of(topic_id)


def _delete_posts_of(topic_id: int) -> None:
    while True:
        page = list(ForumPost.by_topic.query(topic_id, limit=100, page_size=100))
        if not page:
            return
        with ForumPost.batch_write() as batch:
            for post in page:
                batch.delete(post)


# -- posts -----------------------------------------------------------------------------------

def post_public(p: ForumPost) -> PostPublic:
    return PostPublic(id=int(p.id), content=p.content, topic_id=int(p.topic_id),
                      author_id=p.author_id, author_username=p.author_username,
                      is_edited=bool(p.is_edited), edited_at=p.edited_at,
                      created_at=p.created_at, updated_at=p.updated_at)


def list_posts(topic_id: int, limit: int, cursor: str | None) -> Page[PostPublic]:
    """One Query page of a topic's posts, oldest first."""
    _topic(topic_id)
    start = decode_cursor(cursor, {"topic_id": topic_id})
    result = ForumPost.by_topic.query(topic_id, limit=limit, page_size=limit,
                                      last_evaluated_key=start)
    return page_of(result, (post_public(p) for p in result))


def _writable(caller: Caller, topic: ForumTopic) -> None:
    if topic.is_locked and not is_admin(caller):
        raise Forbidden("The topic is locked")


def create_post(caller: Caller, topic_id: int, data: PostCreate) -> PostPublic:
    """A reply; refused in a locked topic (admins excepted). Moves the topic up its category."""
    topic = _topic(topic_id)
    _writable(caller, topic)
    user = caller.user
    _take_write(caller)
    now = utcnow_iso()

    def create(post_id: int) -> ForumPost:
        post = ForumPost(post_id, topic_id=topic_id, content=data.content,
                         author_id=user.id, author_username=user.username,
                         is_edited=False, created_at=now)
        open_topic = ForumTopic.id.exists()
        if not is_admin(caller):
            open_topic = open_topic & (ForumTopic.is_locked == False)  # noqa: E712 - DynamoDB
        with TransactWrite(connection=transaction_connection()) as tx:
            tx.save(post, condition=ForumPost.id.does_not_exist())
            tx.update(topic, actions=[
                ForumTopic.post_count.add(1), ForumTopic.last_post_at.set(now),
                ForumTopic.listing.set(listing_key(bool(topic.is_pinned), now, topic_id))],
                condition=open_topic)
            tx.update(ForumCategory(BOARD, int(topic.category_id)),
                      actions=[ForumCategory.post_count.add(1)],
                      condition=ForumCategory.id.exists())
        return post

    def collided(e: Exception) -> bool:
        return isinstance(e, TransactWriteError) and _failed(e, 0) and not _failed(e, 1)

    try:
        return post_public(with_new_id(create, collided))
    except TransactWriteError as e:
        if _failed(e, 1):
            raise Conflict("The topic was locked or deleted meanwhile") from e
        raise


def _post(post_id: int) -> ForumPost:
    try:
        return ForumPost.get(post_id)
    except ForumPost.DoesNotExist as e:
        raise NotFound("Post not found") from e


def update_post(caller: Caller, post_id: int, data: PostUpdate) -> PostPublic:
    """Only the author edits a post, and not in a locked topic."""
    post = _post(post_id)
    if caller.id != post.author_id:
        raise Forbidden("Only the post's author may edit it")
    _writable(caller, _topic(int(post.topic_id)))
    now = utcnow_iso()
    try:
        post.update(actions=[ForumPost.content.set(data.content), ForumPost.is_edited.set(True),
                             ForumPost.edited_at.set(now), ForumPost.updated_at.set(now)],
                    condition=ForumPost.id.exists())
    except UpdateError as e:
        if condition_failed(e):
            raise NotFound("Post not found") from e
        raise
    return post_public(post)


def delete_post(caller: Caller, post_id: int) -> None:
    """The author or an admin deletes a reply; the first post goes only with its topic."""
    post = _post(post_id)
    admin = is_admin(caller)
    if caller.id != post.author_id and not admin:
        raise Forbidden("Only the post's author may delete it")
    topic = _topic(int(post.topic_id))
    if not admin:
        _writable(caller, topic)
    if int(topic.first_post_id) == post_id:
        raise BadRequest("Cannot delete the first post; delete the topic instead")
    try:
        with TransactWrite(connection=transaction_connection()) as tx:
            tx.delete(post, condition=ForumPost.id.exists())
            tx.update(topic, actions=[ForumTopic.post_count.add(-1)],
                      condition=ForumTopic.id.exists())
            tx.update(ForumCategory(BOARD, int(topic.category_id)),
                      actions=[ForumCategory.post_count.add(-1)],
                      condition=ForumCategory.id.exists())
    except TransactWriteError as e:
        if _failed(e, 0) or _failed(e, 1):
            raise NotFound("Post not found") from e
        raise

