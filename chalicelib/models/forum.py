"""The community forum: categories, topics (threads) and posts.

Access patterns:
- categories: Query forumcategories["main"] (one small partition, read whole); by id: GetItem
- topic by id: GetItem forumtopics[id]; a view: UpdateItem ADD views_count (returns the item)
- topics of a category, pinned first, then latest activity first: Query
  forumtopics.by_category[category_id] descending on `listing` ("<1|0>#<last_post_at>#<id>")
- post by id: GetItem forumposts[id]
- posts of a topic, oldest first: Query forumposts.by_topic[topic_id] ascending on id
- a category's slug is taken once: the `uniques` guard "forumcat#<slug>", written in the same
  transaction as the category
Counters (a category's topic_count/post_count, a topic's post_count) move in the same
transaction as the item they count.
"""

from __future__ import annotations

from pynamodb.attributes import BooleanAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex

from chalicelib.models.base import IdAttribute, Model, table_name

BOARD = "main"


class ForumCategory(Model):
    class Meta:
        table_name = table_name("forumcategories")

    board = UnicodeAttribute(hash_key=True, default=BOARD)
    id = IdAttribute(range_key=True)
    name = UnicodeAttribute()
    slug = UnicodeAttribute()
    description = UnicodeAttribute(null=True)
    order = NumberAttribute(default=0)
    icon = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute(null=True)
    topic_count = NumberAttribute(default=0)
    post_count = NumberAttribute(default=0)


class TopicsByCategory(GlobalSecondaryIndex["ForumTopic"]):
    class Meta:
        index_name = "by_category"
        projection = AllProjection()

    category_id = IdAttribute(hash_key=True)
    listing = UnicodeAttribute(range_key=True)


class ForumTopic(Model):
    class Meta:
        table_name = table_name("forumtopics")

    id = IdAttribute(hash_key=True)
    category_id = IdAttribute()
    title = UnicodeAttribute()
    slug = UnicodeAttribute()
    author_id = IdAttribute()
    author_username = UnicodeAttribute()
    is_pinned = BooleanAttribute(default=False)
    is_locked = BooleanAttribute(default=False)
    views_count = NumberAttribute(default=0)
    post_count = NumberAttribute(default=0)
    first_post_id = IdAttribute()
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute(null=True)
    last_post_at = UnicodeAttribute()
    # The by_category sort key: pinned first, then the latest activity (see listing_key).
    listing = UnicodeAttribute()
    by_category = TopicsByCategory()


class PostsByTopic(GlobalSecondaryIndex["ForumPost"]):
    class Meta:
        index_name = "by_topic"
        projection = AllProjection()

    topic_id = IdAttribute(hash_key=True)
    id = IdAttribute(range_key=True)


class ForumPost(Model):
    class Meta:
        table_name = table_name("forumposts")

    id = IdAttribute(hash_key=True)
    topic_id = IdAttribute()
    content = UnicodeAttribute()
    author_id = IdAttribute()
    author_username = UnicodeAttribute()
    is_edited = BooleanAttribute(default=False)
    edited_at = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute(null=True)
    by_topic = PostsByTopic()


def listing_key(is_pinned: bool, last_post_at: str, topic_id: int) -> str:
    """The by_category sort key: "1#..." (pinned) sorts above "0#..."; ISO times sort as text."""
    return f"{1 if is_pinned else 0}#{last_post_at}#{topic_id:016d}"
