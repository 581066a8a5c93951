"""A local fake of the Databricks serving-endpoints REST API: real HTTP on 127.0.0.1, in-memory endpoints the
tests read and change, for the real databricks-sdk to talk to (as tests/setup does for the set-up tool).

It serves what serve-model and smoke-test-endpoint call, as the API behaves:
- a created or updated configuration is pending (``config_update`` IN_PROGRESS) for ``polls_to_settle`` reads,
  while the previous one keeps serving; then it becomes live, or, for a version in ``failing_versions``, the
  update ends UPDATE_FAILED and the previous configuration stays live;
- a configuration update while one is in progress is refused (409), as are inference-table changes of catalog,
  schema or prefix without disabling the table first (400);
- the creator is the identity of the token (``identity``), fixed at creation;
- ``/serving-endpoints/<name>/invocations`` is forwarded to the model server ``serve_model(<entity name>,
  <version>)`` returns for the live configuration (a real MLflow scoring server), and answers 503 while the
  endpoint is not ready.
Anything else answers 404, so a new call shows up as a failing test.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

API = "/api/2.0/serving-endpoints"
PERMISSIONS = "/api/2.0/permissions/serving-endpoints"


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.body = status, {"error_code": code, "message": message}


class FakeServing:
    """The serving endpoints of one workspace, as the identity ``identity`` sees them."""

    def __init__(self, identity: str, token: str = "dapi-serving-fake") -> None:
        self.identity, self.token = identity, token
        self.endpoints: dict[str, dict[str, Any]] = {}
        self.permissions: dict[str, list[dict[str, Any]]] = {}  # endpoint id -> direct access control list
        self.serve_model: Callable[[str, str], str] | None = None  # (model, version) -> scoring server URL
        self.failing_versions: set[str] = set()
        self.polls_to_settle = 2
        self.calls: list[tuple[str, str]] = []
        self._pending_polls: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._routes = [
            ("GET", "/.well-known/databricks-config", self._no_host_metadata),
            ("GET", "/api/2.0/preview/scim/v2/Me", lambda m, b: {"userName": self.identity}),
            ("GET", API, lambda m, b: {"endpoints": [self._view(e) for e in self.endpoints.values()]}),
            ("POST", API, self._create),
            ("GET", rf"{API}/(?P<name>[\w-]+)", lambda m, b: self._read(m["name"])),
            ("PUT", rf"{API}/(?P<name>[\w-]+)/config", self._update_config),
            ("PUT", rf"{API}/(?P<name>[\w-]+)/ai-gateway", self._put_ai_gateway),
            ("PATCH", rf"{API}/(?P<name>[\w-]+)/tags", self._patch_tags),
            ("GET", rf"{PERMISSIONS}/(?P<id>\w+)", self._get_permissions),
            ("PUT", rf"{PERMISSIONS}/(?P<id>\w+)", self._set_permissions),
        ]
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, payload, headers = fake.handle(
                    self.command, urlsplit(self.path).path, raw, self.headers.get("Authorization")
                )
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = answer  # noqa: N815 (http.server names)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def mutations(self) -> list[tuple[str, str]]:
        """The calls that change something (everything but reads and queries)."""
        return [(m, p) for m, p in self.calls if m != "GET" and not p.endswith("/invocations")]

    # --- dispatch ------------------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, raw: bytes, auth: str | None
    ) -> tuple[int, bytes, dict[str, str]]:
        with self._lock:
            self.calls.append((method, path))
        try:
            if path != "/.well-known/databricks-config" and auth != f"Bearer {self.token}":
                raise ApiError(401, "UNAUTHENTICATED", "Bad credentials")
            invocation = re.fullmatch(r"/serving-endpoints/(?P<name>[\w-]+)/invocations", path)
            if invocation and method == "POST":
                return self._invoke(invocation["name"], raw)
            body = json.loads(raw) if raw else None
            for route_method, pattern, handler in self._routes:
                match = re.fullmatch(pattern, path)
                if match and route_method == method:
                    with self._lock:
                        return 200, json.dumps(handler(match, body)).encode(), {}
            raise ApiError(404, "NOT_FOUND", f"no fake for {method} {path}")
        except ApiError as error:
            return error.status, json.dumps(error.body).encode(), {}

    # --- endpoints -----------------------------------------------------------------------------------

    def _no_host_metadata(self, match: Any, body: Any) -> Any:
        raise ApiError(404, "NOT_FOUND", "no host metadata")

    def _endpoint(self, name: str) -> dict[str, Any]:
        if name not in self.endpoints:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Serving endpoint {name} does not exist")
        return self.endpoints[name]

    @staticmethod
    def _view(endpoint: dict[str, Any]) -> dict[str, Any]:
        return {key: copy.deepcopy(value) for key, value in endpoint.items() if value is not None}

    @staticmethod
    def _output(config: dict[str, Any], version: int) -> dict[str, Any]:
        routes = (config.get("traffic_config") or {}).get("routes")
        entities = config.get("served_entities") or []
        if routes is None and len(entities) == 1:  # the API's default route
            routes = [{"served_model_name": entities[0]["name"], "traffic_percentage": 100}]
        return {
            "served_entities": entities,
            "traffic_config": {"routes": routes or []},
            "config_version": version,
        }

    def _begin(self, endpoint: dict[str, Any], config: dict[str, Any]) -> None:
        version = (endpoint["config"] or {}).get("config_version", 0) + 1
        endpoint["pending_config"] = self._output(config, version)
        endpoint["state"]["config_update"] = "IN_PROGRESS"
        self._pending_polls[endpoint["name"]] = self.polls_to_settle

    def _read(self, name: str) -> dict[str, Any]:
        endpoint = self._endpoint(name)
        if endpoint["pending_config"] is not None:
            self._pending_polls[name] -= 1
            if self._pending_polls[name] <= 0:
                self._settle(endpoint)
        return self._view(endpoint)

    def _settle(self, endpoint: dict[str, Any]) -> None:
        pending, endpoint["pending_config"] = endpoint["pending_config"], None
        versions = {str(e.get("entity_version")) for e in pending["served_entities"]}
        if versions & self.failing_versions:
            endpoint["state"]["config_update"] = "UPDATE_FAILED"  # the live config stays as it was
            return
        endpoint["config"] = pending
        endpoint["state"] = {"config_update": "NOT_UPDATING", "ready": "READY"}

    def _create(self, match: Any, body: dict[str, Any]) -> dict[str, Any]:
        name = body["name"]
        if name in self.endpoints:
            raise ApiError(
                409, "RESOURCE_ALREADY_EXISTS", f"Serving endpoint with name {name} already exists"
            )
        endpoint = {
            "name": name,
            "id": f"ep{next(self._ids)}",
            "creator": self.identity,
            "description": body.get("description"),
            "route_optimized": body.get("route_optimized"),
            "tags": body.get("tags") or [],
            "ai_gateway": body.get("ai_gateway"),
            "config": None,
            "pending_config": None,
            "state": {"config_update": "NOT_UPDATING", "ready": "NOT_READY"},
        }
        self.endpoints[name] = endpoint
        self.permissions[endpoint["id"]] = [
            {"user_name": self.identity, "all_permissions": [{"permission_level": "CAN_MANAGE"}]}
        ]
        self._begin(endpoint, body.get("config") or {})
        return self._view(endpoint)

    def _update_config(self, match: Any, body: dict[str, Any]) -> dict[str, Any]:
        endpoint = self._endpoint(match["name"])
        if endpoint["state"]["config_update"] == "IN_PROGRESS":
            raise ApiError(409, "RESOURCE_CONFLICT", "An update is already in progress for this endpoint")
        self._begin(endpoint, body)
        return self._view(endpoint)

    def _put_ai_gateway(self, match: Any, body: dict[str, Any]) -> dict[str, Any]:
        endpoint = self._endpoint(match["name"])
        old = (endpoint["ai_gateway"] or {}).get("inference_table_config") or {}
        new = body.get("inference_table_config") or {}
        where = ("catalog_name", "schema_name", "table_name_prefix")
        if old.get("enabled") and new.get("enabled") and any(old.get(k) != new.get(k) for k in where):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "Disable the inference table before changing it")
        endpoint["ai_gateway"] = body
        return body

    def _patch_tags(self, match: Any, body: dict[str, Any]) -> dict[str, Any]:
        endpoint = self._endpoint(match["name"])
        tags = {tag["key"]: tag.get("value") for tag in endpoint["tags"]}
        tags.update({tag["key"]: tag.get("value") for tag in body.get("add_tags") or []})
        for key in body.get("delete_tags") or []:
            tags.pop(key, None)
        endpoint["tags"] = [{"key": key, "value": value} for key, value in tags.items()]
        return {"tags": endpoint["tags"]}

    def _acl(self, endpoint_id: str) -> dict[str, Any]:
        if endpoint_id not in self.permissions:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"no serving endpoint {endpoint_id}")
        inherited = {
            "group_name": "admins",
            "all_permissions": [{"permission_level": "CAN_MANAGE", "inherited": True}],
        }
        return {
            "object_id": f"/serving-endpoints/{endpoint_id}",
            "access_control_list": [*self.permissions[endpoint_id], inherited],
        }

    def _get_permissions(self, match: Any, body: Any) -> dict[str, Any]:
        return self._acl(match["id"])

    def _set_permissions(self, match: Any, body: dict[str, Any]) -> dict[str, Any]:
        self._acl(match["id"])
        self.permissions[match["id"]] = [
            {
                **{k: v for k, v in entry.items() if k != "permission_level"},
                "all_permissions": [{"permission_level": entry["permission_level"]}],
            }
            for entry in body.get("access_control_list") or []
        ]
        return self._acl(match["id"])

    # --- the data plane ------------------------------------------------------------------------------

    def _invoke(self, name: str, raw: bytes) -> tuple[int, bytes, dict[str, str]]:
        with self._lock:
            endpoint = self._endpoint(name)
            ready = endpoint["state"]["ready"] == "READY" and endpoint["config"]
            entities = endpoint["config"]["served_entities"] if ready else []
        if not entities:
            raise ApiError(503, "TEMPORARILY_UNAVAILABLE", f"Endpoint {name} is not ready")
        (entity,) = entities
        if self.serve_model is None:
            raise ApiError(503, "TEMPORARILY_UNAVAILABLE", "no model server in this test")
        backend = self.serve_model(entity["entity_name"], str(entity["entity_version"]))
        request = urllib.request.Request(
            f"{backend}/invocations", data=raw, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, payload = error.code, error.read()
        return status, payload, {"served-model-name": entity["name"]}
