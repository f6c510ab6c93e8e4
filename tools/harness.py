"""Run the real `__main__.py` under Pulumi's mock runtime and record everything it registers.

Each run gets its own event loop, fresh Pulumi options and config, and a recording monitor that
keeps, per resource: type, name, parent, inputs (secrets still wrapped) and the options the engine
would see (protect, retain_on_delete, delete_before_replace, dependencies, ...). Pulumi's mocks do
not apply options, so we read them from the RegisterResource request itself.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import runpy
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs, Mocks
from pulumi.runtime.rpc import is_rpc_secret, unwrap_rpc_secret, wrap_rpc_secret

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ROOT / "__main__.py"
KEY_POOL_SIZE = 8
_KEY_LOCK = threading.Lock()


@cache
def rsa_key_pem(bits: int, index: int) -> tuple[str, str]:
    """A real RSA key (private PKCS#1 PEM, public SPKI PEM) from a small cached pool.

    pulumi-tls would generate one per resource; real keys let the DKIM tests sign and verify.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def plain(value: Any) -> Any:
    """Unwrap secret markers recursively (for assertions on values)."""
    if is_rpc_secret(value):
        return plain(unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def is_secret(value: Any) -> bool:
    return bool(is_rpc_secret(value))


@dataclass
class Registration:
    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    inputs: dict[str, Any]
    """Inputs as the engine receives them; secret values keep their secret wrapper."""
    options: dict[str, Any]
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def plain_inputs(self) -> dict[str, Any]:
        inputs: dict[str, Any] = plain(self.inputs)
        return inputs


class RecordingMocks(Mocks):
    """Returns provider-like outputs for the resource types mailstack uses."""

    def __init__(self) -> None:
        self.calls: list[MockCallArgs] = []

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = dict(args.inputs)
        digest = hashlib.sha256(args.name.encode()).hexdigest()
        if args.typ == "random:index/randomPassword:RandomPassword":
            length = int(plain(args.inputs.get("length", 24)))
            word = base64.b64encode(hashlib.sha256(("pw" + args.name).encode()).digest()).decode()[:length]
            state.update(result=wrap_rpc_secret(word), bcryptHash=wrap_rpc_secret("$2a$10$" + digest[:53]))
        elif args.typ == "random:index/randomBytes:RandomBytes":
            raw = hashlib.sha256(("bytes" + args.name).encode()).digest()[: int(plain(args.inputs["length"]))]
            state.update(base64=wrap_rpc_secret(base64.b64encode(raw).decode()), hex=wrap_rpc_secret(raw.hex()))
        elif args.typ == "tls:index/privateKey:PrivateKey" and plain(args.inputs.get("algorithm")) == "ECDSA":
            private, public = ecdsa_key_pem(args.name)
            state.update(privateKeyPem=wrap_rpc_secret(private), publicKeyPem=public)
        elif args.typ == "cloudflare:index/zoneDnssec:ZoneDnssec":
            state.update(ds=f"zone-{plain(args.inputs['zoneId'])[:8]}. 3600 IN DS 2371 13 2 {digest}")
        elif args.typ == "tls:index/privateKey:PrivateKey":
            bits = int(plain(args.inputs.get("rsaBits", 2048)))
            # Keyed by resource name, so a key is the same in every run (cross-run comparisons).
            index = int(hashlib.sha256(args.name.encode()).hexdigest(), 16) % KEY_POOL_SIZE
            # The mock runtime calls new_resource from a thread pool; without the lock two threads
            # can both miss the cache and hand out two different keys for one pool slot.
            with _KEY_LOCK:
                private, public = rsa_key_pem(bits, index)
            state.update(
                privateKeyPem=wrap_rpc_secret(private),
                privateKeyPemPkcs8=wrap_rpc_secret(private),
                publicKeyPem=public,
            )
        elif args.typ == "tls:index/selfSignedCert:SelfSignedCert":
            state["certPem"] = f"-----BEGIN CERTIFICATE-----\nMOCK{digest[:16]}\n-----END CERTIFICATE-----\n"
        elif args.typ == "docker:index/remoteImage:RemoteImage":
            state.update(imageId=f"sha256:{digest}", repoDigest=f"{plain(args.inputs['name'])}@sha256:{digest}")
        elif args.typ in ("command:local:Command", "command:remote:Command"):
            state.update(stdout="", stderr="")
        return f"{args.name}-id", state

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        self.calls.append(args)
        if args.token == "cloudflare:index/getZone:getZone":
            query = plain(args.args)
            if "zoneId" in query:  # a lookup by id (the zone's account, for Workers)
                return {"id": query["zoneId"], "account": {"id": MOCK_ACCOUNT_ID, "name": "mock"}}, []
            name = query["filter"]["name"]
            return {
                "id": hashlib.md5(name.encode()).hexdigest(),
                "name": name,
                "nameServers": ["a.ns.test", "b.ns.test"],
                "account": {"id": MOCK_ACCOUNT_ID, "name": "mock"},
            }, []
        if args.token == "aws:route53/getZone:getZone":
            name = plain(args.args)["name"]
            return {"zoneId": "Z" + hashlib.md5(name.encode()).hexdigest()[:20].upper(), "name": name}, []
        if args.token == "docker:index/getRegistryImage:getRegistryImage":
            return {"sha256Digest": "sha256:" + hashlib.sha256(str(plain(args.args)).encode()).hexdigest()}, []
        return {}, []


def ecdsa_key_pem(name: str) -> tuple[str, str]:
    """A P-256 key derived from `name` (the same in every run, distinct per resource): (private, public) PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    secret = int(hashlib.sha256(name.encode()).hexdigest(), 16) % (2**255)
    key = ec.derive_private_key(secret, ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public.decode()


MOCK_ACCOUNT_ID = "0123456789abcdef0123456789abcdef"
"""The Cloudflare account every mocked zone belongs to."""


class RecordingMonitor(MockMonitor):
    def __init__(self, mocks: Mocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Registration] = []
        self.outputs: dict[str, dict[str, Any]] = {}

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]  # pulumi's MockMonitor is untyped
        if request.type != "pulumi:pulumi:Stack":
            urn = self.make_urn(request.parent, request.type, request.name)
            self.registrations.append(
                Registration(
                    type=request.type,
                    name=request.name,
                    urn=urn,
                    parent=request.parent,
                    custom=request.custom,
                    inputs=rpc.deserialize_properties(request.object, keep_unknowns=True),
                    options={
                        "protect": request.protect,
                        "retain_on_delete": request.retainOnDelete,
                        "delete_before_replace": request.deleteBeforeReplace,
                        "dependencies": sorted(request.dependencies),
                        "ignore_changes": list(request.ignoreChanges),
                        "replace_on_changes": list(request.replaceOnChanges),
                        "additional_secret_outputs": list(request.additionalSecretOutputs),
                        "provider": request.provider,
                        "aliases": [{"name": a.spec.name, "parent_urn": a.spec.parentUrn} for a in request.aliases],
                        # Which inputs read from which resources: a replaced resource makes them unknown.
                        "property_dependencies": {
                            key: sorted(deps.urns) for key, deps in request.propertyDependencies.items()
                        },
                    },
                    state=self.resources[urn].state if urn in self.resources else {},
                )
            )
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:
        self.outputs[request.urn] = rpc.deserialize_properties(request.outputs, keep_unknowns=True)
        return super().RegisterResourceOutputs(request)  # type: ignore[no-untyped-call]  # as above


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@dataclass
class RunResult:
    resources: list[Registration]
    outputs: dict[str, Any]
    """Stack outputs (pulumi.export), secrets still wrapped."""
    component_outputs: dict[str, dict[str, Any]]
    logs: list[str]
    error: BaseException | None
    calls: list[MockCallArgs]

    def by_type(self, typ: str) -> list[Registration]:
        return [r for r in self.resources if r.type == typ]

    def one(self, typ: str, name: str | None = None) -> Registration:
        found = [r for r in self.by_type(typ) if name is None or r.name == name]
        assert len(found) == 1, f"expected one {typ} {name or ''}, found {[r.name for r in found]}"
        return found[0]

    def named(self, name: str) -> Registration:
        found = [r for r in self.resources if r.name == name]
        assert len(found) == 1, f"expected one resource named {name}, found {len(found)}"
        return found[0]

    @property
    def plain_outputs(self) -> dict[str, Any]:
        outputs: dict[str, Any] = plain(self.outputs)
        return outputs


def stack_config(path: Path | str) -> dict[str, Any]:
    """Config of a stack file, as Pulumi hands it to the program (objects as JSON text)."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    return {k: json.dumps(v) if isinstance(v, (dict, list)) else str(v) for k, v in (data.get("config") or {}).items()}


def with_values(config: Mapping[str, Any], **paths: Any) -> dict[str, Any]:
    """Copy a config mapping, setting nested values: with_values(cfg, **{"accounts/me@x.org/password": "pw"})."""
    out = dict(config)
    for path, value in paths.items():
        top, *rest = path.split("/")
        key = f"mailstack:{top}" if ":" not in top else top
        if ":" in top and not rest:
            out[key] = value
            continue
        if not rest:
            out[key] = json.dumps(value) if isinstance(value, (dict, list)) else value
            continue
        obj = json.loads(out[key]) if key in out else {}
        node = obj
        for seg in rest[:-1]:
            node = node.setdefault(seg, {})
        if value is None:
            node.pop(rest[-1], None)
        else:
            node[rest[-1]] = value
        out[key] = json.dumps(obj)
    return out


def _holds_output(value: Any) -> bool:
    if isinstance(value, pulumi.Output):
        return True
    if isinstance(value, dict):
        return any(_holds_output(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_output(v) for v in value)
    return False


def run_program(
    config: Mapping[str, Any],
    secret_keys: tuple[str, ...] | list[str] = (),
    *,
    stack: str = "dev",
    program: Path = PROGRAM,
    preview: bool = False,
) -> RunResult:
    """Evaluate the program once under mocks; never raises for program errors (see `.error`)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    pulumi.runtime.reset_options()
    pulumi.runtime.set_all_config(
        {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in config.items()}, list(secret_keys)
    )
    mocks = RecordingMocks()
    monitor = RecordingMonitor(mocks)
    logger = logging.getLogger(f"mailstack.test.{id(monitor)}")
    handler = ListHandler()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    pulumi.runtime.set_mocks(mocks, project="mailstack", stack=stack, preview=preview, monitor=monitor, logger=logger)
    error: BaseException | None = None
    exported: dict[str, Any] = {}

    async def collect_exports() -> None:
        root = pulumi.runtime.get_root_resource()
        for key, value in (getattr(root, "outputs", None) or {}).items():
            if not _holds_output(value):
                exported[key] = value
                continue
            # Only values holding Outputs go through from_input: it lifts every nested list item and
            # dict value into an Output of its own (10,000 for the 100-domain record list).
            out = value if isinstance(value, pulumi.Output) else pulumi.Output.from_input(value)
            resolved = await out.future(with_unknowns=True)
            exported[key] = wrap_rpc_secret(resolved) if await out.is_secret() else resolved

    @pulumi.runtime.test  # type: ignore[untyped-decorator]  # pulumi.runtime.test has no annotations
    def evaluate() -> Any:
        runpy.run_path(str(program), run_name="__main__")
        return collect_exports()

    try:
        evaluate()
    except BaseException as exc:  # noqa: BLE001 - the caller asserts on it
        error = exc
    finally:
        pulumi.runtime.reset_options()
        pulumi.runtime.set_all_config({}, [])
        loop.close()
        asyncio.set_event_loop(None)
        logger.removeHandler(handler)
    return RunResult(
        # Registration order depends on the SDK's thread pool; URN order is stable across runs.
        resources=sorted(monitor.registrations, key=lambda r: r.urn),
        outputs=exported,
        component_outputs=dict(monitor.outputs),
        logs=handler.messages,
        error=error,
        calls=mocks.calls,
    )
