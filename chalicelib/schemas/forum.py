"""Forum requests and responses; field names are the web client's (upstream schemas/forum.py)."""

from __future__ import annotations

from pydantic import Field, model_validator

from chalicelib.schemas.common import PublicModel, RequestModel

SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"


class CategoryCreate(RequestModel):
    name: str = Field(min_length=1, max_length=100)
    slug: str = Field(min_length=1, max_length=100, pattern=SLUG_PATTERN)
    description: str | None = Field(default=None, max_length=1000)
    order: int = Field(default=0, ge=0, le=10_000)
    icon: str | None = Field(default=None, max_length=50)


class CategoryUpdate(RequestModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    order: int | None = Field(default=None, ge=0, le=10_000)
    icon: str | None = Field(default=None, max_length=50)


class CategoryPublic(PublicModel):
    id: int
    name: str
    description: str | None
    slug: str
    order: int
    icon: str | None
    created_at: str
    updated_at: str | None
    topic_count: int
    post_count: int


class TopicCreate(RequestModel):
    title: str = Field(min_length=1, max_length=200)
    category_id: int = Field(ge=1)
    content: str = Field(min_length=1, max_length=50_000)  # the first post

    @model_validator(mode="after")
    def _not_blank(self) -> TopicCreate:
        if not self.title.strip() or not self.content.strip():
            raise ValueError("title and content must not be blank")
        return self


class TopicUpdate(RequestModel):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    is_pinned: bool | None = None  # admins only
    is_locked: bool | None = None  # admins only

    @model_validator(mode="after")
    def _something(self) -> TopicUpdate:
        if self.title is not None and not self.title.strip():
            raise ValueError("title must not be blank")
        if self.title is None and self.is_pinned is None and self.is_locked is None:
            raise ValueError("nothing to change: give title, is_pinned or is_locked")
        return self


class TopicPublic(PublicModel):
    """A topic as the topic page reads it (upstream ForumTopicResponse, plus post_count)."""

    id: int
    title: str
    slug: str
    category_id: int
    category_name: str
    author_id: int
    author_username: str
    is_pinned: bool
    is_locked: bool
    views_count: int
    post_count: int
    created_at: str
    updated_at: str | None
    last_post_at: str


class TopicListItem(PublicModel):
    """A topic in a category's list (upstream ForumTopicListItem)."""

    id: int
    title: str
    slug: str
    category_id: int
    author_id: int
    author_username: str
    is_pinned: bool
    is_locked: bool
    views_count: int
    post_count: int
    created_at: str
    last_post_at: str


class PostCreate(RequestModel):
    content: str = Field(min_length=1, max_length=50_000)

    @model_validator(mode="after")
    def _not_blank(self) -> PostCreate:
        if not self.content.strip():
            raise ValueError("content must not be blank")
        return self


class PostUpdate(PostCreate):
    pass


class PostPublic(PublicModel):
    id: int
    content: str
    topic_id: int
    author_id: int
    author_username: str
    is_edited: bool
    edited_at: str | None
    created_at: str
    updated_at: str | None
