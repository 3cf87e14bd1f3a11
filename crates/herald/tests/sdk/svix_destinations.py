"""Destinations end to end with the official Svix Python SDK.

Drives every destination and poller route the SDK has: create, list, get, upsert,
patch, poll with iterators until done, consumer polls and seek, rotate secret, delete;
and a fifoEndpoint that receives its batches in order, through a receiver that fails in
between, each batch verified with the SDK's own verifier. Exits non-zero on any failure.
"""
import json
import os
import queue
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer

from svix.api import (
    ApplicationIn,
    DestinationIn,
    DestinationPatch,
    DestinationTransformIn,
    EndpointSecretRotateIn,
    MessageIn,
    PollingEndpointConsumerSeekIn,
    Svix,
    SvixOptions,
)
from svix.api.message_poller import MessagePollerConsumerPollOptions, MessagePollerPollOptions
from svix.webhooks import Webhook

FIFO_KEY = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

batches: "queue.Queue[tuple[int, dict, bytes]]" = queue.Queue()
# The receiver's answers, in order; then 200.
script = [500, 500]
lock = threading.Lock()


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        with lock:
            status = script.pop(0) if script else 200
        batches.put((status, {k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=server.serve_forever, daemon=True).start()
receiver_url = f"http://127.0.0.1:{server.server_port}/batches"

url = os.environ["HERALD_URL"]
svix = Svix(os.environ["HERALD_TOKEN"], SvixOptions(server_url=url))
app = svix.application.create(ApplicationIn(name="Ledger"))

# --- a poller, read with its own token ---
poller = svix.destination.create(
    app.id,
    DestinationIn(type="pollingEndpoint", uid="audit-log", event_types=["invoice.paid", "invoice.void"]),
)
assert poller.status == "enabled" and poller.type == "pollingEndpoint", poller
fifo = svix.destination.create(
    app.id,
    DestinationIn(type="fifoEndpoint", batch_size=4, config={"url": receiver_url, "key": FIFO_KEY}),
)
assert fifo.batch_size == 4 and fifo.config.url == receiver_url, fifo
listed = svix.destination.list(app.id)
assert sorted(d.id for d in listed.data) == sorted([poller.id, fifo.id]), listed
assert svix.destination.get(app.id, "audit-log").id == poller.id

token = svix.destination.rotate_secret(app.id, poller.id, EndpointSecretRotateIn()).key
reader = Svix(token, SvixOptions(server_url=url))

sent = []
for i in range(12):
    kind = "invoice.paid" if i % 3 else "invoice.draft"
    msg = svix.message.create(app.id, MessageIn(event_type=kind, payload={"n": i}))
    sent.append((msg.id, kind))
wanted = [m for m, kind in sent if kind != "invoice.draft"]

# Iterators until done, three at a time.
read, iterator = [], None
for _ in range(20):
    page = reader.message.poller.poll(
        app.id, poller.id, MessagePollerPollOptions(limit=3, iterator=iterator)
    )
    assert len(page.data) <= 3
    read += [m.id for m in page.data]
    iterator = page.iterator
    if page.done:
        break
assert read == wanted, (read, wanted)
again = reader.message.poller.poll(app.id, poller.id, MessagePollerPollOptions(iterator=iterator))
assert again.data == [] and again.done, again
only = reader.message.poller.poll(app.id, poller.id, MessagePollerPollOptions(event_type="invoice.paid", limit=100))
assert [m.event_type for m in only.data] == ["invoice.paid"] * len(wanted)
assert only.data[0].payload == {"n": 1}, only.data[0]

# A consumer group keeps its own position; seek moves it back.
group = []
for _ in range(10):
    page = reader.message.poller.consumer_poll(
        app.id, poller.id, "billing", MessagePollerConsumerPollOptions(limit=5)
    )
    group += [m.id for m in page.data]
    if page.done:
        break
assert group == wanted, (group, wanted)
rest = reader.message.poller.consumer_poll(app.id, poller.id, "billing")
assert rest.data == [], rest
seek = reader.message.poller.consumer_seek(
    app.id,
    poller.id,
    "billing",
    PollingEndpointConsumerSeekIn(after=datetime.now(timezone.utc) - timedelta(hours=1)),
)
assert seek.iterator
replayed = reader.message.poller.consumer_poll(
    app.id, poller.id, "billing", MessagePollerConsumerPollOptions(limit=100)
)
assert [m.id for m in replayed.data] == wanted, replayed

# The poller's token reads the poller and nothing else.
try:
    reader.application.list()
    raise AssertionError("a poller's token listed applications")
except Exception as e:  # the SDK raises its HttpError
    assert "insufficient_access" in str(e), e

# --- the fifoEndpoint: every message, in order, through two refusals ---
got, deadline = [], time.time() + 30
wh = Webhook(FIFO_KEY)
statuses = []
while len(got) < len(sent) and time.time() < deadline:
    try:
        status, headers, body = batches.get(timeout=1)
    except queue.Empty:
        continue
    wh.verify(body, headers)
    messages = json.loads(body)
    assert 1 <= len(messages) <= 4, messages
    statuses.append(status)
    if status == 200:
        got += [m["id"] for m in messages]
assert got == [m for m, _ in sent], (got, sent)
assert statuses[:2] == [500, 500], statuses
state = svix.destination.get(app.id, fifo.id)
assert state.status == "enabled" and state.failure_reason is None, state

# Patch, upsert, rotate, delete.
patched = svix.destination.patch(
    app.id, fifo.id, DestinationPatch(type="fifoEndpoint", status="disabled", batch_size=10)
)
assert patched.status == "disabled" and patched.batch_size == 10, patched
upserted = svix.destination.upsert(
    app.id,
    "warehouse",
    DestinationIn(type="fifoEndpoint", config={"url": receiver_url}, max_wait_secs=5, status="disabled"),
)
assert upserted.uid == "warehouse" and upserted.max_wait_secs == 5, upserted
# The fifo's batch transformation, set and read with the SDK.
BATCH_CODE = "function handler(input) { return { data: input.events.map((e) => e.payload) }; }"
svix.destination.transformation.patch(app.id, fifo.id, DestinationTransformIn(code=BATCH_CODE))
shaped = svix.destination.transformation.get(app.id, fifo.id)
assert shaped.code == BATCH_CODE and shaped.enabled is True, shaped
rotated = svix.destination.rotate_secret(app.id, fifo.id, EndpointSecretRotateIn()).key
assert rotated.startswith("whsec_") and rotated != FIFO_KEY, rotated
for d in (poller.id, fifo.id, upserted.id):
    svix.destination.delete(app.id, d)
assert svix.destination.list(app.id).data == []

# Destinations in the consumer's own systems, made with the SDK's config models: the
# local PostgreSQL and RabbitMQ (the queue is made by RabbitMQ's default exchange
# routing to a queue of that name: here none, so mandatory is turned off).
from svix.api import OtelTracingConfigIn, PostgresConfigIn, RabbitMqConfigIn, S3ConfigIn, SnsConfigIn, SqsConfigIn

# The AWS types, made with the SDK's models (their delivery is tested against moto in
# broker_destinations.rs); the secret key is never shown.
aws = {"region": "us-east-1", "access_key_id": "AKIDEXAMPLE", "secret_access_key": "never-shown", "endpoint_url": "http://127.0.0.1:9"}
for kind, config in (
    ("sqs", SqsConfigIn(queue_url="http://127.0.0.1:9/123456789012/orders", **aws)),
    ("sns", SnsConfigIn(topic_arn="arn:aws:sns:us-east-1:123456789012:events", **aws)),
    ("amazonS3", S3ConfigIn(bucket="herald-archive", **aws)),
):
    aws_made = svix.destination.create(app.id, DestinationIn(type=kind, status="disabled", config=config))
    assert aws_made.type == kind and aws_made.config.region == "us-east-1", aws_made
    assert aws_made.config.access_key_id == "AKIDEXAMPLE", aws_made.config
    assert "never-shown" not in json.dumps(aws_made.config.model_dump(mode="json")), aws_made.config
    svix.destination.delete(app.id, aws_made.id)

import socket


def answers(port):
    """Whether a local server answers on the port (else its part is skipped, unless
    HERALD_REQUIRE_BROKERS says it must run)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        assert not os.environ.get("HERALD_REQUIRE_BROKERS"), f"nothing answers on 127.0.0.1:{port}"
        print(f"nothing answers on 127.0.0.1:{port}: that destination is skipped")
        return False


made = []
table = "herald_sdk_" + str(int(time.time() * 1000))
if answers(5432):
    pg = svix.destination.create(
        app.id,
        DestinationIn(
            type="postgres",
            batch_size=100,
            config=PostgresConfigIn(url="postgres://postgres@127.0.0.1:5432/postgres", password="unused-here", table_name=table),
        ),
    )
    assert pg.type == "postgres" and pg.config.table_name == table, pg
    assert "unused-here" not in json.dumps(pg.config.model_dump(mode="json")), pg.config
    made.append(pg)
if answers(5672):
    rabbit = svix.destination.create(
        app.id,
        DestinationIn(
            type="rabbitMq",
            config=RabbitMqConfigIn(uri="amqp://guest:guest@127.0.0.1:5672/%2F", routing_key="herald-sdk", mandatory=False),
        ),
    )
    assert rabbit.config.uri == "amqp://guest:****@127.0.0.1:5672/%2F", rabbit.config
    assert rabbit.config.routing_key == "herald-sdk" and rabbit.config.mandatory is False, rabbit.config
    made.append(rabbit)
traces = svix.destination.create(
    app.id,
    DestinationIn(
        type="otelTracing",
        config=OtelTracingConfigIn(url=receiver_url, headers={"Authorization": "Bearer t0k", "X-Env": "test"}),
    ),
)
assert traces.config.headers.headers == {"X-Env": "test"}, traces.config
assert traces.config.headers.sensitive == ["Authorization"], traces.config
made.append(traces)
svix.message.create(app.id, MessageIn(event_type="invoice.paid", payload={"to": "the database"}))
deadline = time.time() + 15
while True:
    states = [svix.destination.get(app.id, d.id) for d in made]
    if all(s.current_iterator != d.current_iterator for s, d in zip(states, made)):
        break
    assert time.time() < deadline, states
    time.sleep(0.2)
assert all(s.failure_reason is None for s in states), states
for d in made:
    svix.destination.delete(app.id, d.id)

print("SVIX SDK DESTINATIONS OK")
