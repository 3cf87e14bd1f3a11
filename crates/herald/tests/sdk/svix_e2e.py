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
    EndpointIn(url=receiver_url, filter_types=["order.created"], description="shop backend"),
)
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
print("SVIX SDK E2E OK")
