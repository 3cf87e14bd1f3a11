"""End-to-end check of Herald with the official Svix Python SDK.

Creates an application, an event type and an endpoint pointing at a local receiver,
sends a message, reads the attempts back, and verifies the delivered webhook with the
SDK's own verifier. Exits non-zero on any failure.
"""
import json
import os
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

from svix.api import (
    ApplicationIn,
    EndpointIn,
    EventTypeIn,
    MessageIn,
    Svix,
    SvixOptions,
)
from svix.webhooks import Webhook

deliveries: "queue.Queue[tuple[dict, bytes]]" = queue.Queue()


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        deliveries.put(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=server.serve_forever, daemon=True).start()
receiver_url = f"http://127.0.0.1:{server.server_port}/webhooks"

svix = Svix(os.environ["HERALD_TOKEN"], SvixOptions(server_url=os.environ["HERALD_URL"]))

app = svix.application.create(ApplicationIn(name="Store", uid="store-1"))
assert app.id.startswith("app_"), app.id
same = svix.application.get_or_create(ApplicationIn(name="Store", uid="store-1"))
assert same.id == app.id

svix.event_type.create(EventTypeIn(name="order.created", description="An order was placed"))
endpoint = svix.endpoint.create(
    app.id,
    EndpointIn(url=receiver_url, event_types=["order.created"], description="shop backend"),
)
assert endpoint.event_types == ["order.created"], endpoint
secret = svix.endpoint.get_secret(app.id, endpoint.id).key
assert secret.startswith("whsec_"), secret

payload = {"type": "order.created", "order": {"id": "ord_1", "total": 4200}}
msg = svix.message.create(app.id, MessageIn(event_type="order.created", payload=payload, event_id="order-1"))
assert msg.id.startswith("msg_"), msg.id

headers, body = deliveries.get(timeout=15)
# The verifier raises on a bad signature (older SDKs also return the parsed payload).
Webhook(secret).verify(body, headers)
assert json.loads(body) == payload, body
assert headers["webhook-id"] == msg.id

attempts = None
for _ in range(100):
    attempts = svix.message_attempt.list_by_msg(app.id, msg.id)
    if attempts.data:
        break
    time.sleep(0.05)
assert attempts.data and attempts.data[0].response_status_code == 204, attempts
listed = svix.message.list(app.id)
assert [m.id for m in listed.data] == [msg.id]
endpoints = svix.endpoint.list(app.id)
assert endpoints.data[0].id == endpoint.id
got = svix.message.get(app.id, "order-1")
assert got.id == msg.id

# Tampering must fail the SDK's verifier.
try:
    Webhook(secret).verify(body.replace(b"4200", b"1"), headers)
except Exception:
    pass
else:
    raise SystemExit("verifier accepted a tampered body")

# Rotation: the SDK parses the new key from the 200 answer.
svix.endpoint.rotate_secret(app.id, endpoint.id, __import__("svix.api", fromlist=["EndpointSecretRotateIn"]).EndpointSecretRotateIn())
new_secret = svix.endpoint.get_secret(app.id, endpoint.id).key
assert new_secret != secret

print(json.dumps({"app": app.id, "endpoint": endpoint.id, "msg": msg.id}))

# ---- Coverage of the rest of the SDK surface Herald serves ----
from datetime import datetime, timedelta, timezone

from svix.api import (
    ApplicationListOptions,
    ApplicationPatch,
    EndpointHeadersIn,
    EndpointHeadersPatchIn,
    EndpointPatch,
    EndpointUpsertIn,
    EventExampleIn,
    EventTypePatch,
    EventTypeUpsertIn,
    MessageAttemptListByEndpointOptions,
    MessageListOptions,
    RecoverIn,
)
from svix.exceptions import HttpError, HTTPValidationError

# Applications: pagination through the SDK's iterators, patch, upsert, delete.
for i in range(4):
    svix.application.create(ApplicationIn(name=f"page-{i}"))
seen, iterator = [], None
while True:
    page = svix.application.list(ApplicationListOptions(limit=2, iterator=iterator))
    seen += [a.id for a in page.data]
    if page.done:
        break
    iterator = page.iterator
assert len(seen) == 5 and len(set(seen)) == 5, seen
patched = svix.application.patch(app.id, ApplicationPatch(name="Store (renamed)"))
assert patched.name == "Store (renamed)" and patched.uid == "store-1"
upserted = svix.application.upsert("made-by-upsert", ApplicationIn(name="Upserted"))
assert upserted.uid == "made-by-upsert"
svix.application.delete(upserted.id)

# Errors come back as the SDK's own exception types.
try:
    svix.application.get("app_doesnotexist")
except HttpError as e:
    assert e.status_code == 404, e.status_code
else:
    raise SystemExit("404 not raised")
try:
    svix.endpoint.create(app.id, EndpointIn(url="not a url"))
except HTTPValidationError as e:
    assert e.status_code == 422, e.status_code
else:
    raise SystemExit("422 not raised")

# Event types.
svix.event_type.upsert("order.shipped", EventTypeUpsertIn(description="Shipped", schemas={"1": {"type": "object", "examples": [{"order": "ord_9"}]}}))
et = svix.event_type.patch("order.shipped", EventTypePatch(deprecated=True))
assert et.deprecated is True
assert {e.name for e in svix.event_type.list().data} >= {"order.created", "order.shipped"}

# Endpoints: patch, upsert, headers, stats, send-example, recover.
ep = svix.endpoint.patch(app.id, endpoint.id, EndpointPatch(event_types=["order.created", "order.shipped"]))
assert sorted(ep.event_types) == ["order.created", "order.shipped"], ep
ep2 = svix.endpoint.upsert(app.id, "backup-endpoint", EndpointUpsertIn(url=receiver_url + "/backup", description="backup"))
assert ep2.uid == "backup-endpoint"
assert svix.endpoint.get(app.id, "backup-endpoint").id == ep2.id
svix.endpoint.set_headers(app.id, endpoint.id, EndpointHeadersIn(headers={"X-Shop": "acme", "Authorization": "Bearer x"}))
svix.endpoint.patch_headers(app.id, endpoint.id, EndpointHeadersPatchIn(headers={"X-Extra": "1"}))
hdrs = svix.endpoint.get_headers(app.id, endpoint.id)
assert hdrs.headers == {"X-Shop": "acme", "X-Extra": "1"} and hdrs.sensitive == ["Authorization"], hdrs
example = svix.endpoint.send_example(app.id, endpoint.id, EventExampleIn(event_type="order.shipped"))
headers, body = deliveries.get(timeout=15)
assert json.loads(body) == {"order": "ord_9"} and headers["x-shop"] == "acme", (headers, body)
Webhook(new_secret).verify(body, headers)
for _ in range(100):
    stats = svix.endpoint.get_stats(app.id, endpoint.id)
    if stats.success >= 2:
        break
    time.sleep(0.05)
assert stats.success >= 2 and stats.fail == 0, stats
recovered = svix.endpoint.recover(app.id, endpoint.id, RecoverIn(since=datetime.now(timezone.utc) - timedelta(hours=1)))
assert recovered.id.startswith("qtask_"), recovered

# Messages and the attempt log.
msgs = svix.message.list(app.id, MessageListOptions(event_types=["order.shipped"], with_content=True))
assert [m.id for m in msgs.data] == [example.id], msgs
by_ep = svix.message_attempt.list_by_endpoint(app.id, endpoint.id, MessageAttemptListByEndpointOptions(status=0))
assert len(by_ep.data) >= 2, by_ep
one = svix.message_attempt.get(app.id, msg.id, attempts.data[0].id)
assert one.id == attempts.data[0].id
dests = svix.message_attempt.list_attempted_destinations(app.id, msg.id)
assert [d.id for d in dests.data] == [endpoint.id], dests
sent_to = svix.message_attempt.list_attempted_messages(app.id, endpoint.id)
assert msg.id in [m.id for m in sent_to.data], sent_to
svix.message_attempt.resend(app.id, msg.id, endpoint.id)
headers, body = deliveries.get(timeout=15)
assert headers["webhook-id"] == msg.id
svix.message.expunge_content(app.id, msg.id)
assert svix.message.get(app.id, msg.id).payload == {}
svix.endpoint.delete(app.id, ep2.id)
# An application-scoped token from app-portal-access sees its application only.
from svix.api import AppPortalAccessIn

access = svix.authentication.app_portal_access(app.id, AppPortalAccessIn(expiry=3600))
assert access.url.endswith(f"/portal/{app.id}#token={access.token}"), access.url
portal = Svix(access.token, SvixOptions(server_url=os.environ["HERALD_URL"]))
assert portal.application.get(app.id).id == app.id
other = svix.application.create(ApplicationIn(name="Someone else"))
try:
    portal.application.get(other.id)
    raise AssertionError("an app token read another application")
except Exception as e:  # the SDK raises its HttpError for the 404
    assert "404" in str(getattr(e, "status_code", "")) or "not_found" in str(e), e
portal.authentication.logout()
try:
    portal.application.get(app.id)
    raise AssertionError("the token still works after logout")
except Exception as e:
    assert "401" in str(getattr(e, "status_code", "")) or "authentication_failed" in str(e), e
# Environment export and import, as the SDK's models read and write them.
from svix.api import EnvironmentIn

exported = svix.environment.export()
assert "order.created" in {e.name for e in exported.event_types}, exported
assert exported.connectors == [] and exported.version == 1
svix.environment.import_(
    EnvironmentIn(
        event_types=[EventTypeIn(name="imported.one", description="From staging")],
        settings={"portalTitle": "Store"},
    )
)
assert svix.event_type.get("imported.one").description == "From staging"
assert svix.environment.export().settings == {"portalTitle": "Store"}

# The served OpenAPI document is a valid OpenAPI 3.1 document.
import urllib.request

from openapi_spec_validator import validate as validate_openapi

with urllib.request.urlopen(os.environ["HERALD_URL"] + "/api/v1/openapi.json") as r:
    spec = json.load(r)
validate_openapi(spec)
assert spec["openapi"].startswith("3.1"), spec["openapi"]
print("SVIX SDK COVERAGE OK")
print("SVIX SDK E2E OK")
