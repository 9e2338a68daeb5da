"""
A local stand-in for Modal's control plane, so tests drive the REAL `modal` client over gRPC
(the way moto serves S3 for boto3): the SDK's own serialization, retries, status-to-exception
mapping and result decoding all run, and only the server side is scripted.

It answers the RPCs that `Function.from_name(...).spawn(...)`, `FunctionCall.from_id(...)`,
`.get(timeout=...)`, `.cancel(...)` and `.logs.tail(...)` send in modal 1.6.4; every other RPC
gets UNIMPLEMENTED. Results are encoded the way a Modal container encodes them
(`modal/_runtime/container_io_manager.py`), with the SDK's own serializers. There is no blob
store: functions advertise a 2 MiB inline limit for spawn payloads (the SDK's default is 8 KiB,
above which it would upload to blob storage), and outputs are always sent inline.

Usage, in a conftest:

    @pytest.fixture
    def modal_server(monkeypatch, tmp_path):
        with running_modal_server(monkeypatch, tmp_path) as server:
            yield server
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpclib.server
import modal
import modal.config
from google.protobuf import empty_pb2
from google.protobuf.message import Message
from grpclib import GRPCError, Status
from modal._serialization import (
    deserialize_data_format,
    pickle_exception,
    pickle_traceback,
    serialize_data_format,
)
from modal._utils.blob_utils import MAX_OBJECT_SIZE_BYTES
from modal.client import _Client
from modal_proto import api_grpc, api_pb2

POLL_SECONDS = 0.02  # how often a long poll or a hung RPC looks at the state the test thread changes
STOP_TIMEOUT_SECONDS = 10.0
# Functions take and give pickle only (a client preferring CBOR falls back to it), the format a container
# pickles exceptions in; real Python functions also accept CBOR.
SUPPORTED_FORMATS = [api_pb2.DATA_FORMAT_PICKLE]
ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Modal ids end in 26 of these, like a ULID

Result = api_pb2.GenericResult


def new_id(prefix: str) -> str:
    """An id shaped like Modal's: the SDK tells remote traceback frames by a `<ta-[0-9A-Z]{26}>:` file name prefix."""
    return f"{prefix}-" + "".join(secrets.choice(ID_ALPHABET) for _ in range(26))


@dataclass(frozen=True)
class ReceivedRpc:
    """One RPC as it reached the stand-in, recorded before any fault or answer, so tests can assert what was sent."""

    name: str  # e.g. "FunctionCallCancel"
    request: Message


@dataclass
class Call:
    """A spawned function call: what the client sent, and what the container has reported so far."""

    call_id: str
    app_name: str
    function_name: str
    function_id: str
    app_id: str
    input_id: str
    task_id: str  # the container "running" it; remote traceback frames are attributed to it
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    result: Result | None = None  # None while the input is unfinished
    result_format: int = api_pb2.DATA_FORMAT_UNSPECIFIED
    expired: bool = False
    cancellations: list[bool] = field(default_factory=list)  # terminate_containers of each cancel request
    logs: list[tuple[float, str]] = field(default_factory=list)  # (unix time, text)

    @property
    def running(self) -> bool:
        return self.result is None and not self.expired


@dataclass
class _Fault:
    status: Status | None  # None: hang until released
    message: str
    remaining: int | None  # answers left before the fault clears itself; None: until released


def _raised(exception: BaseException) -> BaseException:
    """Raise the exception once, so it carries a traceback as one raised in user code does."""
    try:
        raise exception
    except BaseException as raised:
        return raised


class ModalServer:
    """The control-plane stand-in: a grpclib server on 127.0.0.1 in its own thread and event loop, plus the
    scripting API tests use to deploy functions and decide what each spawned call reports."""

    def __init__(self) -> None:
        self.received: list[ReceivedRpc] = []
        self.calls: dict[str, Call] = {}  # call id -> call, in spawn order
        self._apps: dict[str, str] = {}  # app name -> app id
        self._functions: dict[tuple[str, str], str] = {}  # (app name, function name) -> function id
        self._faults: dict[str, _Fault] = {}  # RPC name -> fault
        self._secrets: dict[str, set[str]] = {}  # secret name -> the keys it holds
        self._lock = threading.Lock()  # the test thread scripts while the server thread answers
        self._implementations = {
            "FunctionGet": self._function_get,
            "FunctionMap": self._function_map,
            "FunctionGetOutputs": self._function_get_outputs,
            "FunctionCallCancel": self._function_call_cancel,
            "FunctionCallFromId": self._function_call_from_id,
            "AppFetchLogs": self._app_fetch_logs,
            "SecretGetOrCreate": self._secret_get_or_create,
        }
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._grpc_server: _ConnectionTrackingServer | None = None
        self.port: int | None = None

    # Lifecycle

    @property
    def url(self) -> str:
        """What MODAL_SERVER_URL must be for the client to talk to this stand-in."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ModalServer:
        listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listening.bind(("127.0.0.1", 0))
        self.port = listening.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="modal-stand-in", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(listening), self._loop).result(STOP_TIMEOUT_SECONDS)
        return self

    async def _serve(self, listening: socket.socket) -> None:
        # grpclib binds the server to the running loop, so it is made on the server thread.
        self._grpc_server = _ConnectionTrackingServer([_Servicer(self)])
        await self._grpc_server.start(sock=listening)

    def stop(self) -> None:
        """Close the connections (hung RPCs end with them: the client sees the server go away) and the thread."""
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(STOP_TIMEOUT_SECONDS)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(STOP_TIMEOUT_SECONDS)
        self._loop.close()
        self._loop = None

    async def _close(self) -> None:
        self._grpc_server.close()
        for transport in self._grpc_server.transports:
            transport.close()
        await self._grpc_server.wait_closed()

    def __enter__(self) -> ModalServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # Scripting: what is deployed

    def deploy(self, app_name: str, *function_names: str) -> None:
        """Make `Function.from_name(app_name, name)` find these functions; anything else is NOT_FOUND."""
        with self._lock:
            self._apps.setdefault(app_name, new_id("ap"))
            for function_name in function_names:
                self._functions.setdefault((app_name, function_name), new_id("fu"))

    def create_secret(self, name: str, *keys: str) -> None:
        """A named Secret in the workspace holding these keys (their values never matter here)."""
        with self._lock:
            self._secrets[name] = set(keys)

    # Scripting: what a call reports

    def succeed(self, call_id: str, value: Any) -> None:
        """The function returned `value`; the container pickles it as `serialize_data_format` does."""
        data = serialize_data_format(value, api_pb2.DATA_FORMAT_PICKLE)
        self._finish(
            self._call(call_id), Result(status=Result.GENERIC_STATUS_SUCCESS, data=data), api_pb2.DATA_FORMAT_PICKLE
        )

    def raise_in_call(self, call_id: str, exception: BaseException) -> None:
        """User code raised `exception` (any BaseException, e.g. SystemExit): FAILURE with the pickled exception,
        its repr, the formatted traceback and the serialized one the SDK grafts onto the exception it re-raises."""
        call = self._call(call_id)
        if exception.__traceback__ is None:
            exception = _raised(exception)
        serialized_traceback, line_cache = pickle_traceback(exception, call.task_id)
        result = Result(
            status=Result.GENERIC_STATUS_FAILURE,
            exception=repr(exception),
            traceback="".join(traceback.format_exception(exception)),
            serialized_tb=serialized_traceback,
            tb_line_cache=line_cache,
            data=pickle_exception(exception),
        )
        self._finish(call, result, api_pb2.DATA_FORMAT_PICKLE)

    def terminate(self, call_id: str) -> None:
        """The input was cancelled and its container is done with it: TERMINATED, nothing else."""
        self._finish(self._call(call_id), Result(status=Result.GENERIC_STATUS_TERMINATED))

    def unwind(self, call_id: str) -> None:
        """After a cancel without terminate_containers, the container's InputCancellation has unwound user code:
        only now does the call read terminated, as on real Modal."""
        call = self._call(call_id)
        if not call.cancellations:
            raise ValueError(f"{call_id} was not cancelled: nothing raised InputCancellation in its container")
        self.terminate(call_id)

    def time_out(self, call_id: str, message: str = "Function call timed out") -> None:
        """The function ran past its timeout: Modal reports TIMEOUT, the SDK raises FunctionTimeoutError."""
        self._finish(self._call(call_id), Result(status=Result.GENERIC_STATUS_TIMEOUT, exception=message))

    def internal_failure(self, call_id: str, message: str = "Internal failure") -> None:
        """Modal lost the input (e.g. its worker died): INTERNAL_FAILURE, the SDK raises InternalFailure."""
        self._finish(self._call(call_id), Result(status=Result.GENERIC_STATUS_INTERNAL_FAILURE, exception=message))

    def init_failure(self, call_id: str, message: str = "") -> None:
        """The container failed to start: INIT_FAILURE with no exception data (the SDK raises RemoteError(message))."""
        self._finish(self._call(call_id), Result(status=Result.GENERIC_STATUS_INIT_FAILURE, exception=message))

    def expire(self, call_id: str) -> None:
        """The output is gone (outputs are kept for a limited time): no output and no unfinished input,
        which the SDK reports as OutputExpiredError."""
        call = self._call(call_id)
        with self._lock:
            call.result = None
            call.expired = True

    def add_log(self, call_id: str, text: str) -> None:
        """A line the call's container printed to stdout, returned by `FunctionCall.logs.tail()`."""
        call = self._call(call_id)
        with self._lock:
            call.logs.append((time.time(), text))

    # Scripting: faults

    def hang_rpc(self, rpc_name: str) -> None:
        """Requests to `rpc_name` get no answer until `release_rpc` (then the normal one) or `stop`."""
        with self._lock:
            self._faults[rpc_name] = _Fault(status=None, message="", remaining=None)

    def fail_rpc(self, rpc_name: str, status: Status, message: str = "", times: int | None = None) -> None:
        """Answer `rpc_name` with `status`, `times` times or until `release_rpc`. The SDK retries UNAVAILABLE,
        INTERNAL, UNKNOWN, CANCELLED and DEADLINE_EXCEEDED with backoff (3 retries by default) before raising."""
        with self._lock:
            self._faults[rpc_name] = _Fault(status=status, message=message, remaining=times)

    def release_rpc(self, rpc_name: str) -> None:
        """Clear the fault on `rpc_name`: hung requests go on to their normal answer."""
        with self._lock:
            self._faults.pop(rpc_name, None)

    # Reading what was received

    def requests(self, rpc_name: str) -> list[Message]:
        return [rpc.request for rpc in self.received if rpc.name == rpc_name]

    def wait_for_requests(self, rpc_name: str, count: int = 1, timeout: float = 5.0) -> list[Message]:
        """Block until `count` requests to `rpc_name` have arrived, e.g. to know a hung RPC is in flight."""
        deadline = time.monotonic() + timeout
        while len(requests := self.requests(rpc_name)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(requests)} of {count} {rpc_name} requests arrived within {timeout} s")
            time.sleep(POLL_SECONDS)
        return requests

    # Serving (server thread)

    async def _handle(self, rpc_name: str, stream: grpclib.server.Stream) -> None:
        request = await stream.recv_message()
        self.received.append(ReceivedRpc(rpc_name, request))
        await self._apply_fault(rpc_name)
        implementation = self._implementations.get(rpc_name)
        if implementation is None:
            raise GRPCError(Status.UNIMPLEMENTED, f"{rpc_name} is not implemented by the Modal stand-in")
        await stream.send_message(await implementation(request))

    async def _apply_fault(self, rpc_name: str) -> None:
        while True:
            with self._lock:
                fault = self._faults.get(rpc_name)
                if fault is None:
                    return
                if fault.status is not None:
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining <= 0:
                            del self._faults[rpc_name]
                    raise GRPCError(fault.status, fault.message)
            await asyncio.sleep(POLL_SECONDS)

    async def _function_get(self, request: api_pb2.FunctionGetRequest) -> api_pb2.FunctionGetResponse:
        with self._lock:
            app_id = self._apps.get(request.app_name)
            function_id = self._functions.get((request.app_name, request.object_tag))
        if app_id is None:
            raise GRPCError(Status.NOT_FOUND, f"App '{request.app_name}' not found")
        if function_id is None:
            raise GRPCError(Status.NOT_FOUND, f"Could not find object with tag '{request.object_tag}'")
        function_type = api_pb2.Function.FUNCTION_TYPE_FUNCTION
        return api_pb2.FunctionGetResponse(
            function_id=function_id,
            handle_metadata=api_pb2.FunctionHandleMetadata(
                function_name=request.object_tag,
                function_type=function_type,
                is_method=False,
                app_id=app_id,
                definition_id=new_id("de"),
                max_object_size_bytes=MAX_OBJECT_SIZE_BYTES,
                max_async_object_size_bytes=MAX_OBJECT_SIZE_BYTES,
                supported_input_formats=SUPPORTED_FORMATS,
                supported_output_formats=SUPPORTED_FORMATS,
            ),
            # The SDK builds FunctionInfo from this and needs at least one ranked function.
            function=api_pb2.FunctionData(
                function_name=request.object_tag,
                function_type=function_type,
                ranked_functions=[
                    api_pb2.FunctionData.RankedFunction(function=api_pb2.Function(function_name=request.object_tag))
                ],
                supported_input_formats=SUPPORTED_FORMATS,
                supported_output_formats=SUPPORTED_FORMATS,
            ),
        )

    async def _function_map(self, request: api_pb2.FunctionMapRequest) -> api_pb2.FunctionMapResponse:
        with self._lock:
            deployed = {function_id: key for key, function_id in self._functions.items()}
            if request.function_id not in deployed:
                raise GRPCError(Status.NOT_FOUND, f"Function {request.function_id} not found")
            app_name, function_name = deployed[request.function_id]
            app_id = self._apps[app_name]
        [item] = request.pipelined_inputs  # spawn sends its one input along with the map request
        args, kwargs = deserialize_data_format(item.input.args, item.input.data_format, None)
        call = Call(
            call_id=new_id("fc"),
            app_name=app_name,
            function_name=function_name,
            function_id=request.function_id,
            app_id=app_id,
            input_id=new_id("in"),
            task_id=new_id("ta"),
            args=args,
            kwargs=kwargs,
        )
        with self._lock:
            self.calls[call.call_id] = call
        return api_pb2.FunctionMapResponse(
            function_call_id=call.call_id,
            function_call_jwt=f"jwt-{call.call_id}",
            pipelined_inputs=[
                api_pb2.FunctionPutInputsResponseItem(
                    idx=item.idx, input_id=call.input_id, input_jwt=f"jwt-{call.input_id}"
                )
            ],
        )

    async def _function_get_outputs(
        self, request: api_pb2.FunctionGetOutputsRequest
    ) -> api_pb2.FunctionGetOutputsResponse:
        """Long-polls up to the request's timeout, as Modal does, so `get(timeout=5)` returns once the call ends."""
        call = self._known_call(request.function_call_id)
        deadline = time.monotonic() + request.timeout
        while call.running and time.monotonic() < deadline:
            await asyncio.sleep(POLL_SECONDS)
        with self._lock:
            if call.result is None:
                return api_pb2.FunctionGetOutputsResponse(num_unfinished_inputs=0 if call.expired else 1)
            output = api_pb2.FunctionGetOutputsItem(
                result=call.result, idx=0, input_id=call.input_id, data_format=call.result_format, task_id=call.task_id
            )
        return api_pb2.FunctionGetOutputsResponse(outputs=[output], num_unfinished_inputs=0)

    async def _function_call_cancel(self, request: api_pb2.FunctionCallCancelRequest) -> Message:
        """With terminate_containers the container is killed and the call is TERMINATED at once; without it
        the container raises InputCancellation and the call runs on until the test calls `unwind`."""
        call = self._known_call(request.function_call_id)
        with self._lock:
            call.cancellations.append(request.terminate_containers)
            if request.terminate_containers and call.running:
                call.result = Result(status=Result.GENERIC_STATUS_TERMINATED)
                call.result_format = api_pb2.DATA_FORMAT_UNSPECIFIED
        return empty_pb2.Empty()

    async def _secret_get_or_create(
        self, request: api_pb2.SecretGetOrCreateRequest
    ) -> api_pb2.SecretGetOrCreateResponse:
        """`Secret.from_name(name, required_keys=...)` as it hydrates (at deploy): the server checks the keys."""
        with self._lock:
            keys = self._secrets.get(request.deployment_name)
        if keys is None:
            raise GRPCError(Status.NOT_FOUND, f"Secret '{request.deployment_name}' not found")
        missing = sorted(set(request.required_keys) - keys)
        if missing:
            raise GRPCError(Status.FAILED_PRECONDITION, f"Secret is missing key(s): {', '.join(missing)}")
        return api_pb2.SecretGetOrCreateResponse(secret_id=new_id("st"))

    async def _function_call_from_id(
        self, request: api_pb2.FunctionCallFromIdRequest
    ) -> api_pb2.FunctionCallFromIdResponse:
        call = self._known_call(request.function_call_id)
        return api_pb2.FunctionCallFromIdResponse(
            function_call_id=call.call_id,
            num_inputs=1,
            metadata=api_pb2.FunctionCallHandleMetadata(app_id=call.app_id, function_id=call.function_id),
        )

    async def _app_fetch_logs(self, request: api_pb2.AppFetchLogsRequest) -> api_pb2.AppFetchLogsResponse:
        """The newest `limit` stdout lines of the app's calls (or of the one call asked for) in [since, until]."""
        since, until = request.since.ToNanoseconds() / 1e9, request.until.ToNanoseconds() / 1e9
        wanted_sources = (api_pb2.FILE_DESCRIPTOR_UNSPECIFIED, api_pb2.FILE_DESCRIPTOR_STDOUT)
        with self._lock:
            lines = [
                (timestamp, text, call)
                for call in self.calls.values()
                if call.app_id == request.app_id
                and request.function_call_id in ("", call.call_id)
                and request.source in wanted_sources
                for timestamp, text in call.logs
                if since <= timestamp <= until
            ]
        lines.sort(key=lambda line: line[0])
        lines = lines[max(len(lines) - request.limit, 0) :]
        batches = [
            api_pb2.TaskLogsBatch(
                task_id=call.task_id,
                function_id=call.function_id,
                input_id=call.input_id,
                items=[
                    api_pb2.TaskLogs(
                        data=text,
                        timestamp=timestamp,
                        timestamp_ns=int(timestamp * 1e9),
                        file_descriptor=api_pb2.FILE_DESCRIPTOR_STDOUT,
                        function_call_id=call.call_id,
                        input_id=call.input_id,
                        container_id=call.task_id,
                    )
                ],
            )
            for timestamp, text, call in lines
        ]
        return api_pb2.AppFetchLogsResponse(batches=batches)

    # Helpers

    def _call(self, call_id: str) -> Call:
        with self._lock:
            if call_id not in self.calls:
                raise KeyError(f"no call {call_id} was spawned on this stand-in")
            return self.calls[call_id]

    def _known_call(self, call_id: str) -> Call:
        """The call, or NOT_FOUND as Modal answers for an id it does not know."""
        with self._lock:
            call = self.calls.get(call_id)
        if call is None:
            raise GRPCError(Status.NOT_FOUND, f"Function call {call_id} not found")
        return call

    def _finish(self, call: Call, result: Result, result_format: int = api_pb2.DATA_FORMAT_UNSPECIFIED) -> None:
        with self._lock:
            call.result = result
            call.result_format = result_format
            call.expired = False


class _ConnectionTrackingServer(grpclib.server.Server):
    """grpclib's server, remembering its connections: its close() (and Python 3.11's asyncio) leaves them open,
    and a stopped stand-in must look gone to the client at once rather than when a keepalive ping fails."""

    def __init__(self, handlers: list[api_grpc.ModalClientBase]):
        super().__init__(handlers)
        self.transports: list[asyncio.BaseTransport] = []

    def _protocol_factory(self):
        protocol = super()._protocol_factory()
        connection_made = protocol.connection_made

        def remember(transport: asyncio.BaseTransport) -> None:
            self.transports.append(transport)
            connection_made(transport)

        protocol.connection_made = remember
        return protocol


def _route(rpc_name: str):
    async def handler(self: _ServicerBase, stream: grpclib.server.Stream) -> None:
        await self.server._handle(rpc_name, stream)

    handler.__name__ = rpc_name
    return handler


class _ServicerBase(api_grpc.ModalClientBase):
    """Modal's generated servicer; its RPC methods are all abstract, so `_Servicer` routes each to the stand-in."""

    def __init__(self, server: ModalServer):
        self.server = server


_Servicer = type(
    "_Servicer",
    (_ServicerBase,),
    {name: _route(name) for name in api_grpc.ModalClientBase.__abstractmethods__},
)


# Pointing the real client at a stand-in


def reset_modal_client() -> None:
    """The SDK keeps one client per process (`_Client._client_from_env`), bound to the server URL it was built
    with; close and forget it so the next SDK call builds one from the current environment."""
    if _Client._client_from_env is not None:
        modal.Client.from_env().close()  # from_env returns the cached client; closing it also forgets it


@contextlib.contextmanager
def running_modal_server(monkeypatch, config_dir: Path) -> Iterator[ModalServer]:
    """Serve a fresh stand-in and point this process's real `modal` client at it, for one test.

    Every MODAL_* variable is cleared first (a profile, an environment, OAuth settings or
    override headers would change what the client sends), the `.modal.toml` profile the SDK
    read at import is replaced by an empty one, and the API proxy is disabled, so the client
    talks to this stand-in on loopback and to nothing else."""
    with ModalServer() as server:
        for name in [name for name in os.environ if name.startswith("MODAL_")]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("MODAL_CONFIG_PATH", str(config_dir / "modal.toml"))
        monkeypatch.setattr(modal.config, "user_config_path", str(config_dir / "modal.toml"))
        monkeypatch.setattr(modal.config, "_user_config", {})
        monkeypatch.setattr(modal.config, "_profile", "default")
        monkeypatch.setenv("MODAL_SERVER_URL", server.url)
        monkeypatch.setenv("MODAL_TOKEN_ID", "ak-stand-in")
        monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-stand-in")
        monkeypatch.setenv("MODAL_DISABLE_API_PROXY", "1")
        reset_modal_client()
        try:
            yield server
        finally:
            reset_modal_client()
