"""Tools: typed Python functions the model may call.

`@tool` turns a typed function (sync or async) into a `Tool`: its JSON schema is built
from the signature (or from a single pydantic-model parameter), its description from the
docstring. `Tool.invoke` validates arguments against that schema, enforces the timeout and
runs sync functions in a worker thread so they never block the event loop.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, get_type_hints, overload

from pydantic import BaseModel, ValidationError, create_model

from armillary._errors import ArmillaryError
from armillary._models import ToolSpec


class ToolError(ArmillaryError):
    """A tool failed; the message goes back to the model as the tool's result."""

    code = "tool_error"
    status_code = 500


class ToolArgumentsError(ToolError):
    code = "invalid_tool_arguments"
    status_code = 422


class ToolTimeout(ToolError):
    code = "tool_timeout"
    status_code = 504


@dataclass
class Tool:
    """A callable tool. `fn` receives validated keyword arguments."""

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any]
    timeout: float | None = 30.0
    arguments_model: type[BaseModel] | None = None
    #: when set, `fn` takes one argument: an instance of this model
    takes_model: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(name=self.name, description=self.description, parameters=self.parameters)

    def validate(self, arguments: dict[str, Any]) -> BaseModel | dict[str, Any]:
        if self.arguments_model is None:
            return arguments
        try:
            return self.arguments_model.model_validate(arguments)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ToolArgumentsError(
                f"invalid arguments for tool {self.name!r}: {problems}") from None

    async def invoke(self, arguments: dict[str, Any]) -> Any:
        """Validate `arguments`, run the tool under its timeout and return its result."""
        validated = self.validate(arguments)
        if isinstance(validated, BaseModel):
            args: tuple[Any, ...] = (validated,) if self.takes_model else ()
            kwargs = {} if self.takes_model else {
                name: getattr(validated, name) for name in type(validated).model_fields
            }
        else:
            args, kwargs = (), validated
        try:
            if inspect.iscoroutinefunction(self.fn):
                call: Awaitable[Any] = self.fn(*args, **kwargs)
            else:
                call = asyncio.to_thread(self.fn, *args, **kwargs)
            if self.timeout is None:
                return await call
            return await asyncio.wait_for(call, self.timeout)
        except TimeoutError:
            raise ToolTimeout(f"tool {self.name!r} took longer than {self.timeout}s") from None


def _schema_of(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        if isinstance(prop, dict):
            prop.pop("title", None)
    return schema


def build_tool(fn: Callable[..., Any], *, name: str | None = None,
               description: str | None = None, timeout: float | None = 30.0) -> Tool:
    """Make a `Tool` from a typed function (what `@tool` does)."""
    signature = inspect.signature(fn)
    hints = get_type_hints(fn)
    params = [p for p in signature.parameters.values()
              if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    takes_model = (
        len(params) == 1
        and inspect.isclass(hints.get(params[0].name))
        and issubclass(hints[params[0].name], BaseModel)
    )
    if takes_model:
        model: type[BaseModel] = hints[params[0].name]
    else:
        fields: dict[str, Any] = {}
        for p in params:
            if p.name not in hints:
                raise TypeError(f"tool {fn.__name__!r}: parameter {p.name!r} needs a type hint")
            default = ... if p.default is inspect.Parameter.empty else p.default
            fields[p.name] = (hints[p.name], default)
        model = create_model(f"{fn.__name__}_arguments", **fields)
    doc = inspect.getdoc(fn) or ""
    return Tool(
        name=name or fn.__name__,
        description=description if description is not None else doc.split("\n\n")[0].strip(),
        parameters=_schema_of(model),
        fn=fn,
        timeout=timeout,
        arguments_model=model,
        takes_model=takes_model,
    )


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...
@overload
def tool(*, name: str | None = None, description: str | None = None,
         timeout: float | None = 30.0) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(fn: Callable[..., Any] | None = None, /, *, name: str | None = None,
         description: str | None = None,
         timeout: float | None = 30.0) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Decorate a typed function to make it a tool.

        @tool
        def add(a: float, b: float) -> float:
            "Add two numbers."
            return a + b

        @tool(timeout=5)
        async def fetch(url: str) -> str: ...
    """
    if fn is not None:
        return build_tool(fn, name=name, description=description, timeout=timeout)

    def decorate(f: Callable[..., Any]) -> Tool:
        return build_tool(f, name=name, description=description, timeout=timeout)

    return decorate
