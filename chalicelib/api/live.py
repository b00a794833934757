"""Live job updates: the WebSocket handlers ($connect, $default, $disconnect) and the pusher fed
by the jobs and wsconnections DynamoDB streams (see services/live.py for the protocol)."""

from __future__ import annotations

from chalice import Blueprint, Response
from chalice.app import DynamoDBEvent, WebsocketAPI, WebsocketEvent

from chalicelib.config import get_settings
from chalicelib.services import live

bp = Blueprint(__name__)
# Chalice wraps websocket handlers (Lambda's (event, context) -> WebsocketEvent) only when the
# decorating object has a websocket_api, which a Blueprint lacks; the handlers' own posts go
# through services/live.poster, so this instance is never used to send.
bp.websocket_api = WebsocketAPI()

# The streams of infra/resources.yaml; infra/api-merge.json points the deployed event source
# mappings at the resources stack's exports (chalice needs a value when it packages the app).
JOBS_STREAM_ARN = get_settings().jobs_stream_arn
CONNECTIONS_STREAM_ARN = get_settings().ws_connections_stream_arn


def _post(event: WebsocketEvent) -> live.Post:
    return live.poster(live.management_endpoint(event.domain_name, event.stage))


@bp.on_ws_connect()
def ws_connect(event: WebsocketEvent) -> Response:
    query = event.to_dict().get("queryStringParameters") or {}
    status = live.connect(event.connection_id, query)
    return Response(body="", status_code=status)


@bp.on_ws_message()
def ws_message(event: WebsocketEvent) -> None:
    live.on_message(event.connection_id, event.body, _post(event))


@bp.on_ws_disconnect()
def ws_disconnect(event: WebsocketEvent) -> None:
    live.disconnect(event.connection_id)


@bp.on_dynamodb_record(stream_arn=JOBS_STREAM_ARN, name="on_job_changes",
                       starting_position="LATEST")
def on_job_changes(event: DynamoDBEvent) -> None:
    endpoint = live.management_endpoint()
    live.stream_records(event.to_dict()["Records"], live.poster(endpoint), live.closer(endpoint))


@bp.on_dynamodb_record(stream_arn=CONNECTIONS_STREAM_ARN, name="on_new_sockets",
                       starting_position="LATEST")
def on_new_sockets(event: DynamoDBEvent) -> None:
    endpoint = live.management_endpoint()
    live.stream_records(event.to_dict()["Records"], live.poster(endpoint), live.closer(endpoint))
