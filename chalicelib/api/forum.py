"""Routes: /api/v1/forum (categories, topics, posts)."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.http import (
    json_response,
    list_response,
    page_request,
    parse_body,
    path_id,
    required_caller,
    route,
)
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

bp = Blueprint(__name__)


@route(bp, "/categories",
       doc=Doc("List the forum's categories with their topic and post counts",
               response=CategoryPublic, is_list=True, auth="none"))
def list_categories() -> Response:
    return json_response(forum.list_categories())


@route(bp, "/categories", methods=["POST"],
       doc=Doc("Create a category (forum administrators)", CategoryCreate, CategoryPublic,
               status=201, errors=(409,)))
def create_category() -> Response:
    request = bp.current_request
    caller = required_caller(request)
    data = parse_body(request, CategoryCreate)
    return json_response(forum.create_category(caller, data), status=201)


@route(bp, "/categories/{category_id}", methods=["PUT", "PATCH"],
       doc=Doc("Change a category (forum administrators)", CategoryUpdate, CategoryPublic))
def update_category(category_id: str) -> Response:
    request = bp.current_request
    caller = required_caller(request)
    data = parse_body(request, CategoryUpdate)
    return json_response(forum.update_category(caller, path_id(category_id), data))


@route(bp, "/categories/{category_id}/topics",
       doc=Doc("List a category's topics: pinned first, then latest activity first",
               response=TopicListItem, is_list=True, auth="none"))
def list_topics(category_id: str) -> Response:
    request = bp.current_request
    limit, cursor = page_request(request)
    page = forum.list_topics(path_id(category_id), limit, cursor)
    return list_response(request, page.items, page, limit)


@route(bp, "/topics", methods=["POST"],
       doc=Doc("Open a topic with its first post (signed-in users)", TopicCreate, TopicPublic,
               status=201, errors=(429,)))
def create_topic() -> Response:
    request = bp.current_request
    caller = required_caller(request)
    data = parse_body(request, TopicCreate)
    return json_response(forum.create_topic(caller, data), status=201)


@route(bp, "/topics/{topic_id}",
       doc=Doc("Get a topic (counts a view)", response=TopicPublic, auth="none"))
def get_topic(topic_id: str) -> Response:
    return json_response(forum.view_topic(path_id(topic_id)))


@route(bp, "/topics/{topic_id}", methods=["PUT", "PATCH"],
       doc=Doc("Rename a topic (its author or an administrator); pin or lock it (administrators)",
               TopicUpdate, TopicPublic, errors=(409,)))
def update_topic(topic_id: str) -> Response:
    request = bp.current_request
    caller = required_caller(request)
    data = parse_body(request, TopicUpdate)
    return json_response(forum.update_topic(caller, path_id(topic_id), data))


@route(bp, "/topics/{topic_id}", methods=["DELETE"],
       doc=Doc("Delete a topic and its posts (its author or an administrator)", status=204,
               errors=(409,)))
def delete_topic(topic_id: str) -> Response:
    forum.delete_topic(required_caller(bp.current_request), path_id(topic_id))
    return Response(body="", status_code=204)


@route(bp, "/topics/{topic_id}/posts",
       doc=Doc("List a topic's posts, oldest first", response=PostPublic, is_list=True,
               auth="none"))
def list_posts(topic_id: str) -> Response:
    request = bp.current_request
    limit, cursor = page_request(request)
    page = forum.list_posts(path_id(topic_id), limit, cursor)
    return list_response(request, page.items, page, limit)


@route(bp, "/topics/{topic_id}/posts", methods=["POST"],
       doc=Doc("Reply to a topic (signed-in users; not in a locked topic)", PostCreate,
               PostPublic, status=201, errors=(409, 429)))
def create_post(topic_id: str) -> Response:
    request = bp.current_request
    caller = required_caller(request)
    data = parse_body(request, PostCreate)
    return json_response(forum.create_post(caller, path_id(topic_id), data), status=201)


@route(bp, "/posts/{post_id}", methods=["PUT", "PATCH"],
       doc=Doc("Edit a post (its author; not in a locked topic)", PostUpdate, PostPublic))
def update_post(post_id: str) -> Response:
    request = bp.current_request
    caller = required_caller(request)
    data = parse_body(request, PostUpdate)
    return json_response(forum.update_post(caller, path_id(post_id), data))


@route(bp, "/posts/{post_id}", methods=["DELETE"],
       doc=Doc("Delete a post (its author or an administrator); not the topic's first post",
               status=204))
def delete_post(post_id: str) -> Response:
    forum.delete_post(required_caller(bp.current_request), path_id(post_id))
    return Response(body="", status_code=204)
