"""Transformations end to end with the official Svix Python SDK.

Sets an endpoint's transformation with the SDK (both its current `patch` and the
deprecated `transformation_partial_update`), reads it back, and checks that a message
arrives changed (body, URL, method, header) and verifiable with the SDK's own verifier;
a message the script cancels never arrives and is listed as canceled. Exits non-zero on
any failure.
"""
import json
import os
import queue
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

from svix.api import (
    ApplicationIn,
    EndpointIn,
    EndpointTransformationIn,
    EndpointTransformationPatch,
    IngestEndpointTransformationPatch,
    MessageIn,
    Svix,
    SvixOptions,
)
from svix.models import MessageStatus
from svix.webhooks import Webhook

received: "queue.Queue[tuple[str, str, dict, bytes]]" = queue.Queue()


class Receiver(BaseHTTPRequestHandler):
    def handle_any(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        received.put((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    do_POST = handle_any
    do_PUT = handle_any

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=server.serve_forever, daemon=True).start()
base = f"http://127.0.0.1:{server.server_port}"

svix = Svix(os.environ["HERALD_TOKEN"], SvixOptions(server_url=os.environ["HERALD_URL"]))
app = svix.application.create(ApplicationIn(name="Chat"))
ep = svix.endpoint.create(app.id, EndpointIn(url=f"{base}/raw"))
secret = svix.endpoint.get_secret(app.id, ep.id).key

empty = svix.endpoint.transformation.get(app.id, ep.id)
assert empty.code is None and not empty.enabled, empty

CODE = """
function handler(webhook) {
    if (webhook.eventType === "chat.typing") {
        webhook.cancel = true;
        return webhook;
    }
    webhook.method = "PUT";
    webhook.url = webhook.url.replace("/raw", "/slack");
    webhook.payload = { text: webhook.payload.user + " said " + webhook.payload.text };
    webhook.headers = { "X-Chat": webhook.eventType };
    return webhook;
}
"""
# The deprecated route first (it takes code and enabled), then the current one.
svix.endpoint.transformation_partial_update(
    app.id, ep.id, EndpointTransformationIn(code="function handler(w) { return w; }", enabled=False)
)
got = svix.endpoint.transformation.get(app.id, ep.id)
assert got.code == "function handler(w) { return w; }" and got.enabled is False, got
svix.endpoint.transformation.patch(app.id, ep.id, EndpointTransformationPatch(code=CODE, enabled=True))
got = svix.endpoint.transformation.get(app.id, ep.id)
assert got.code == CODE and got.enabled is True and got.updated_at is not None, got

said = svix.message.create(app.id, MessageIn(event_type="chat.message", payload={"user": "ann", "text": "hi"}))
method, path, headers, body = received.get(timeout=10)
assert (method, path) == ("PUT", "/slack"), (method, path)
assert json.loads(body) == {"text": "ann said hi"}, body
assert headers["x-chat"] == "chat.message", headers
assert headers["webhook-id"] == said.id
Webhook(secret).verify(body, headers)

typing = svix.message.create(app.id, MessageIn(event_type="chat.typing", payload={"user": "ann"}))
deadline = time.time() + 10
while True:
    attempts = svix.message_attempt.list_by_msg(app.id, typing.id).data
    if attempts:
        break
    assert time.time() < deadline, "no attempt for the cancelled message"
    time.sleep(0.05)
assert attempts[0].status == MessageStatus.CANCELED, attempts[0]
destinations = svix.message_attempt.list_attempted_destinations(app.id, typing.id).data
assert destinations[0].status == MessageStatus.CANCELED, destinations[0]
assert received.empty(), "a cancelled message was sent"

# A source's destination through Svix's ingest routes. The source itself is a Herald
# extension (POST /api/v1/source), made here with a plain request.
req = urllib.request.Request(
    os.environ["HERALD_URL"] + "/api/v1/source",
    method="POST",
    data=json.dumps({"name": "shop-hooks", "scheme": "standard-webhooks",
                     "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                     "destinations": [{"url": f"{base}/ingested"}]}).encode(),
    headers={"authorization": "Bearer " + os.environ["HERALD_TOKEN"], "content-type": "application/json"},
)
with urllib.request.urlopen(req) as r:
    source = json.loads(r.read())
source_id, dest_id = source["id"], source["destinations"][0]["endpointId"]
svix.ingest.endpoint.transformation.patch(
    source_id, dest_id, IngestEndpointTransformationPatch(code=CODE, enabled=True, variables={"k": "v"})
)
got = svix.ingest.endpoint.transformation.get(source_id, dest_id)
assert got.code == CODE and got.enabled is True and got.variables == {"k": "v"}, got

print("SVIX SDK TRANSFORMATIONS OK")
