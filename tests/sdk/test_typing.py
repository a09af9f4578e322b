"""What a user's ``mypy --strict`` sees of the installed SDK (it ships ``py.typed``, PEP 561): the Python
examples of README.md, docs/sdk*.md and docs/guide-llm-billing.md, written out as a small project with a
short prelude where an example is a fragment, type-check; the public results have precise types (and a
wrong argument is an error, not ``Any``); no public signature names ``Any``; the wheel ships ``py.typed``."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
import typing
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
IMPORT_LINE = re.compile(r"^(import \S|from \S+ import )", re.MULTILINE)
TOP_LEVEL_AWAIT = re.compile(r"^(?:\S.*)?\bawait\b", re.MULTILINE)

# A fragment (no imports of its own) continues the page's setup: a client of each kind.
FRAGMENT_PRELUDE = """\
from scrawn import AsyncScrawn, Scrawn

client = Scrawn()
async_client = AsyncScrawn()
"""
# The guide's examples are the steps of one program; the LLM call's inputs come from the reader's app.
GUIDE_PRELUDE = """\
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam

openai_client = OpenAI()
messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hi"}]
"""
# Packages a sketch names that the test environment does not install: typed stubs of what it uses.
STUBS = {
    "django/__init__.pyi": "",
    "django/core/__init__.pyi": "",
    "django/core/wsgi.pyi": (
        "from _typeshed.wsgi import WSGIApplication\n\ndef get_wsgi_application() -> WSGIApplication: ...\n"
    ),
}

# A user's module: the results are precisely typed, and misuse is a type error (each ``type: ignore`` must
# be needed: --strict reports an unused one).
TYPED_RESULTS = """\
from datetime import UTC, datetime
from decimal import Decimal
from typing import assert_type

import httpx

import scrawn
from scrawn import AsyncScrawn, Balance, EventResult, Scrawn, UsagePage, WebhookEvent, tag, verify_webhook
from scrawn.ai import AiStreamResult, AiUsage, openai_usage
from scrawn.types import JSONValue, MiddlewareEvent

client = Scrawn(http_client=httpx.Client(), timeout=5, max_retries=2)
assert_type(scrawn.__version__, str)
assert_type(client.basic_usage_event_consumer(user_id="u", debit=tag("API_CALL")), EventResult)
assert_type(client.create_event(type="doc.page", customer_ref="c", units="2.5").amount, Decimal | None)
assert_type(client.wallet.balance("u"), Balance)
assert_type(client.wallet.balance("u").available, Decimal)
assert_type(client.get_usage(user_id="u", start_time=datetime.now(UTC), end_time=0), UsagePage)
assert_type(client.collect_payment("u", top_up=Decimal("10")), str)
assert_type(client.track_ai(user_id="u", model="m", input_tokens=1, output_tokens=2), bool)
assert_type(client.ai_token_stream_consumer([{"input_tokens": 1}], user_id="u", model="m"), AiStreamResult)
assert_type(openai_usage(object()), AiUsage | None)
assert_type(scrawn.scrawn(timeout=3).base_url, str)
event = verify_webhook(b"{}", {}, "whsec_x")
assert_type(event, WebhookEvent)
assert_type(event.data["userId"], JSONValue)
billed: MiddlewareEvent = {"user_id": "u", "debit": 1, "metadata": {"path": "/api", "n": [1, 2.5, None]}}
client.wallet.update_settings("u", spend_cap=None)

client.basic_usage_event_consumer(user_id="u", debit=[1])  # type: ignore[arg-type]
client.basic_usage_event_consumer(user_id="u", debit=1, metadata={"x": object()})  # type: ignore[dict-item]
client.wallet.credit("u", object())  # type: ignore[arg-type]
client.get_usage(start_time="yesterday")  # type: ignore[arg-type]
Scrawn(http_client=httpx.AsyncClient())  # type: ignore[arg-type]
AsyncScrawn(http_client=httpx.Client())  # type: ignore[arg-type]
scrawn.scrawn(timeoutt=3)  # type: ignore[call-arg]
scrawn.Scrwan  # type: ignore[attr-defined]
"""


def _doc_files() -> list[Path]:
    return [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("sdk*.md")),
        ROOT / "docs" / "guide-llm-billing.md",
    ]


def _as_module(code: str) -> str:
    """A fragment gets the prelude; one with a top-level ``await`` becomes the body of a coroutine."""
    if IMPORT_LINE.search(code):
        return code
    if TOP_LEVEL_AWAIT.search(code):
        body = "".join(f"    {line}" if line.strip() else line for line in code.splitlines(keepends=True))
        code = f"async def _example() -> None:\n{body}"
    return f"{FRAGMENT_PRELUDE}\n\n{code}"


def doc_modules() -> dict[str, str]:
    """File name → module source for every Python example of the documents."""
    found: dict[str, str] = {}
    for path in _doc_files():
        blocks = BLOCK.findall(path.read_text())
        stem = re.sub(r"\W", "_", path.stem.lower())
        if path.name == "guide-llm-billing.md":
            found[f"{stem}.py"] = GUIDE_PRELUDE + "\n\n" + "\n\n".join(blocks)
            continue
        for i, code in enumerate(blocks):
            found[f"{stem}_{i}.py"] = _as_module(code)
    return found


def test_the_examples_are_collected() -> None:
    modules = doc_modules()
    assert "readme_0.py" in modules and "guide_llm_billing.py" in modules
    assert sum(name.startswith("sdk_") for name in modules) >= 20


def test_docs_examples_pass_mypy_strict_against_the_installed_sdk(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    files = {**doc_modules(), "typed_results.py": TYPED_RESULTS}
    for name, code in files.items():
        (project / name).write_text(code)
    for name, code in STUBS.items():
        stub = tmp_path / "stubs" / name
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text(code)
    config = tmp_path / "mypy.ini"
    config.write_text(f"[mypy]\nmypy_path = {tmp_path / 'stubs'}\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file",
            str(config),
            "--cache-dir",
            str(tmp_path / "cache"),
            *sorted(files),
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert f"Success: no issues found in {len(files)} source files" in done.stdout


# -------------------------------------------------------------------------------- public signatures

PUBLIC_MODULES = (
    "scrawn",
    "scrawn.ai",
    "scrawn.errors",
    "scrawn.middleware",
    "scrawn.money",
    "scrawn.pricing",
    "scrawn.types",
    "scrawn.webhooks",
)
# Dunders users call through syntax; ``__getattr__`` of a proxy is the wrapped client's own.
PUBLIC_DUNDERS = frozenset(
    {
        "__init__",
        "__call__",
        "__enter__",
        "__exit__",
        "__aenter__",
        "__aexit__",
        "__iter__",
        "__next__",
        "__aiter__",
        "__anext__",
        "__await__",
        "__getitem__",
        "__len__",
    }
)
ANY = re.compile(r"\bAny\b")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _aliases_with_any() -> set[str]:
    """Names of type aliases (in the SDK's modules) whose definition mentions ``Any``."""
    names: set[str] = set()
    for module_name, module in list(sys.modules.items()):
        if not (module_name == "scrawn" or module_name.startswith("scrawn.")) or ".server" in module_name:
            continue
        for name, value in vars(module).items():
            if inspect.isclass(value) or inspect.isfunction(value) or inspect.ismodule(value):
                continue
            if ANY.search(str(value)):
                names.add(name)
    return names


def _signatures(obj: object) -> list[inspect.Signature]:
    overloads = typing.get_overloads(obj) if callable(obj) else []  # type: ignore[arg-type]
    try:
        return [inspect.signature(f) for f in overloads] or [inspect.signature(obj)]  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return []


def _public_callables() -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = []
    seen: set[int] = set()
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if id(obj) in seen or inspect.ismodule(obj):
                continue
            seen.add(id(obj))
            if not inspect.isclass(obj):
                if callable(obj):
                    found.append((f"{module_name}.{name}", obj))
                continue
            for attr in dir(obj):
                if attr.startswith("_") and attr not in PUBLIC_DUNDERS:
                    continue
                raw = inspect.getattr_static(obj, attr)
                target = raw.fget if isinstance(raw, property) else raw
                if isinstance(target, staticmethod | classmethod):
                    target = target.__func__
                if inspect.isfunction(target) and target.__module__.startswith("scrawn"):
                    found.append((f"{module_name}.{name}.{attr}", target))
            for field_name, annotation in getattr(obj, "__annotations__", {}).items():
                if not field_name.startswith("_"):
                    found.append((f"{module_name}.{name}.{field_name} (field)", str(annotation)))
    return found


def test_public_signatures_name_no_any() -> None:
    """Everything exported (and the clients' methods) is typed precisely: arbitrary values are ``object``
    or ``JSONValue``, never ``Any`` — directly or through an alias."""
    importlib.import_module("scrawn.ai")
    importlib.import_module("scrawn.middleware")
    tainted = _aliases_with_any()
    offenders: list[str] = []
    for where, obj in _public_callables():
        texts = [obj] if isinstance(obj, str) else []
        for signature in _signatures(obj) if not isinstance(obj, str) else []:
            texts += [str(p.annotation) for p in signature.parameters.values()]
            texts.append(str(signature.return_annotation))
        for text in texts:
            if ANY.search(text) or set(NAME.findall(text)) & tainted:
                offenders.append(f"{where}: {text}")
    assert not offenders, "\n".join(offenders)


# ------------------------------------------------------------------------------------------ the wheel


def test_the_wheel_ships_py_typed(tmp_path: Path) -> None:
    pytest.importorskip("hatchling", reason="building the wheel offline needs hatchling (scrawn[dev])")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [wheel] = tmp_path.glob("scrawn-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "scrawn/py.typed" in names and "scrawn/types.py" in names


def test_option_typeddicts_match_the_signatures() -> None:
    """``scrawn(**options)`` and ``client.ai_token_stream_consumer(chunks, **options)`` are typed by
    TypedDicts: they must name exactly the keyword options of what they forward to."""
    from scrawn import Scrawn
    from scrawn.ai import ai_token_stream_consumer
    from scrawn.types import ClientOptions, StreamOptions

    def keyword_only(function: object) -> set[str]:
        parameters = inspect.signature(function).parameters.values()  # type: ignore[arg-type]
        return {p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}

    assert set(ClientOptions.__annotations__) == keyword_only(Scrawn.__init__)
    assert set(StreamOptions.__annotations__) == keyword_only(ai_token_stream_consumer) - {"fork"}
