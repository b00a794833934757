"""Routes: /api/v1/forum (categories, topics, posts)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalice import Blueprint

from chalicelib.api.http import route
from chalicelib.openapi import Doc
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
from chalicelib.services import forum
from chalicelib.services.paging import Page

if TYPE_CHECKING:
    from chalicelib.services.identity import Caller

bp = Blueprint(__name__)


@route(bp, "/categories",
       doc=Doc("List the forum's categories with their topic and post counts",
               response=CategoryPublic, is_list=True, auth="none"))
def list_categories() -> list[CategoryPublic]:
    return forum.list_categories()


@route(bp, "/categories", methods=["POST"],
       doc=Doc("Create a category (forum administrators)", CategoryCreate, CategoryPublic,
               status=201, errors=(409,)))
def create_category(caller: Caller, body: CategoryCreate) -> CategoryPublic:
    return forum.create_category(caller, body)


@route(bp, "/categories/{category_id}", methods=["PUT", "PATCH"],
       doc=Doc("Change a category (forum administrators)", CategoryUpdate, CategoryPublic))
def update_category(caller: Caller, category_id: int, body: CategoryUpdate) -> CategoryPublic:
    return forum.update_category(caller, category_id, body)


@route(bp, "/categories/{category_id}/topics",
       doc=Doc("List a category's topics: pinned first, then latest activity first",
               response=TopicListItem, is_list=True, auth="none"))
def list_topics(category_id: int, limit: int, cursor: str | None) -> Page[TopicListItem]:
    return forum.list_topics(category_id, limit, cursor)


@route(bp, "/topics", methods=["POST"],
       doc=Doc("Open a topic with its first post (signed-in users)", TopicCreate, TopicPublic,
               status=201, errors=(429,)))
def create_topic(caller: Caller, body: TopicCreate) -> TopicPublic:
    return forum.create_topic(caller, body)


@route(bp, "/topics/{topic_id}",
       doc=Doc("Get a topic (counts a view)", response=TopicPublic, auth="none"))
def get_topic(topic_id: int) -> TopicPublic:
    return forum.view_topic(topic_id)


@route(bp, "/topics/{topic_id}", methods=["PUT", "PATCH"],
       doc=Doc("Rename a topic (its author or an administrator); pin or lock it (administrators)",
               TopicUpdate, TopicPublic, errors=(409,)))
def update_topic(caller: Caller, topic_id: int, body: TopicUpdate) -> TopicPublic:
    return forum.update_topic(caller, topic_id, body)


@route(bp, "/topics/{topic_id}", methods=["DELETE"],
       doc=Doc("Delete a topic and its posts (its author or an administrator)", status=204,
               errors=(409,)))
def delete_topic(caller: Caller, topic_id: int) -> None:
    forum.delete_topic(caller, topic_id)


@route(bp, "/topics/{topic_id}/posts",
       doc=Doc("List a topic's posts, oldest first", response=PostPublic, is_list=True,
               auth="none"))
def list_posts(topic_id: int, limit: int, cursor: str | None) -> Page[PostPublic]:
    return forum.list_posts(topic_id, limit, cursor)


@route(bp, "/topics/{topic_id}/posts", methods=["POST"],
       doc=Doc("Reply to a topic (signed-in users; not in a locked topic)", PostCreate,
               PostPublic, status=201, errors=(409, 429)))
def create_post(caller: Caller, topic_id: int, body: PostCreate) -> PostPublic:
    return forum.create_post(caller, topic_id, body)


@route(bp, "/posts/{post_id}", methods=["PUT", "PATCH"],
       doc=Doc("Edit a post (its author; not in a locked topic)", PostUpdate, PostPublic))
def update_post(caller: Caller, post_id: int, body: PostUpdate) -> PostPublic:
    return forum.update_post(caller, post_id, body)


@route(bp, "/posts/{post_id}", methods=["DELETE"],
       doc=Doc("Delete a post (its author or an administrator); not the topic's first post",
               status=204))
def delete_post(caller: Caller, post_id: int) -> None:
    forum.delete_post(caller, post_id)
