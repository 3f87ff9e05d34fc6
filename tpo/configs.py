"""Stage settings validated by declaration, and what the shells make of one declaration.

A stage's settings (generation, filters, evaluation) are a :class:`Config`: a pydantic model
whose fields carry their default, bounds (``ge``/``gt``/``le``/``lt``), choices (``Literal``)
and ``description``. That one declaration validates values (a :class:`ConfigError` names the
field), gives the CLI its options (:func:`click_option`: type, default, bounds, help) and the
app its widgets' defaults (:func:`widget_args`: value, limits, info text), so no default or
limit is written twice. This module never imports gradio: it returns plain keyword arguments.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError

from tpo.errors import TPOError


class ConfigError(TPOError, ValueError):
    """A setting out of range or of the wrong kind; the message names the field.

    A ValueError too, so callers that caught the hand-written checks' ValueError still do."""


# pydantic's bound errors, as a sentence about the field
_BOUNDS = {"greater_than_equal": ("must be at least", "ge"), "greater_than": ("must be more than", "gt"),
           "less_than_equal": ("must be at most", "le"), "less_than": ("must be less than", "lt")}


def _message(title: str, err: ValidationError) -> str:
    """One sentence per problem ("frames must be at least 0, got -1", "answers: input should
    be 'letter' or 'open', got 'essay'"); cross-field checks (no field) keep their own."""
    lines = []
    for problem in err.errors():
        where = ".".join(str(part) for part in problem["loc"])
        text = problem["msg"].removeprefix("Value error, ")
        if where:
            if problem["type"] in _BOUNDS:
                words, key = _BOUNDS[problem["type"]]
                text = f"{where} {words} {problem['ctx'][key]}"
            else:
                text = f"{where}: {text[:1].lower()}{text[1:]}"
            text = f"{text}, got {problem.get('input')!r}"
        lines.append(text)
    return "; ".join(lines) if lines else f"invalid {title}"


class Config(BaseModel):
    """Base of the stage configs: unknown keywords are refused and every problem is a
    :class:`ConfigError` naming its field. Attribute access and keyword construction work as
    they did for the dataclasses these replace; :meth:`model_dump` gives the dict."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as err:
            raise ConfigError(_message(type(self).__name__, err)) from None


@dataclass(frozen=True)
class FieldSpec:
    """What a shell needs to know of one declared field."""

    name: str
    kind: type  # int, float, str or bool (Optional and Literal unwrapped)
    default: Any
    help: str
    choices: tuple | None = None  # a Literal's values
    minimum: float | None = None
    maximum: float | None = None
    min_open: bool = False  # gt rather than ge
    max_open: bool = False  # lt rather than le


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the type without ``| None``, whether None is allowed)."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return (args[0] if len(args) == 1 else annotation), len(args) < len(get_args(annotation))
    return annotation, False


def field_spec(config: type[BaseModel], name: str) -> FieldSpec:
    """The declaration of ``config.name``: type, default, help, choices and bounds."""
    info = config.model_fields[name]
    kind, _ = _unwrap(info.annotation)
    choices = None
    if get_origin(kind) is Literal:
        choices = get_args(kind)
        kind = type(choices[0])
    bounds: dict[str, Any] = {}
    for rule in info.metadata:  # annotated_types.Ge / Gt / Le / Lt
        for attr in ("ge", "gt", "le", "lt"):
            if getattr(rule, attr, None) is not None:
                bounds[attr] = getattr(rule, attr)
    return FieldSpec(
        name=name, kind=kind if isinstance(kind, type) else str, default=info.default,
        help=info.description or "", choices=choices,
        minimum=bounds.get("ge", bounds.get("gt")), maximum=bounds.get("le", bounds.get("lt")),
        min_open="gt" in bounds, max_open="lt" in bounds)


def click_option(config: type[BaseModel], name: str, *param_decls: str, **overrides: Any):
    """A click option for ``config.name``: ``--name-with-dashes`` (or ``param_decls``), its
    type with the declared bounds or choices, default and help; ``overrides`` win (e.g.
    ``required=True``, ``default=None``)."""
    import click

    spec = field_spec(config, name)
    kwargs: dict[str, Any] = {"default": spec.default, "help": spec.help,
                              "show_default": spec.default is not None}
    if spec.kind is bool:
        kwargs.update(is_flag=True, show_default=False)
    elif spec.choices:
        kwargs["type"] = click.Choice([str(c) for c in spec.choices])
    elif spec.kind in (int, float) and (spec.minimum is not None or spec.maximum is not None):
        ranged = click.IntRange if spec.kind is int else click.FloatRange
        kwargs["type"] = ranged(min=spec.minimum, max=spec.maximum, min_open=spec.min_open,
                                max_open=spec.max_open)
    else:
        kwargs["type"] = spec.kind
    kwargs.update(overrides)
    decls = param_decls or ("--" + name.replace("_", "-"),)
    return click.option(*decls, name, **kwargs)


def widget_args(config: type[BaseModel], name: str) -> dict[str, Any]:
    """Keyword arguments of the app's input widget for ``config.name``: ``value`` (the
    default), ``info`` (the description), ``choices`` for a choice and ``minimum`` /
    ``maximum`` for a bounded number (an open bound is given as the limit itself: the
    config's check then explains)."""
    spec = field_spec(config, name)
    args: dict[str, Any] = {"value": spec.default, "info": spec.help}
    if spec.choices:
        args["choices"] = list(spec.choices)
    if spec.minimum is not None:
        args["minimum"] = spec.minimum
    if spec.maximum is not None:
        args["maximum"] = spec.maximum
    return args
