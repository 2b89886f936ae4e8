"""Build a v1beta1 model from its v1alpha1 twin: same fields, some renamed or retyped.

Most of v1beta1 is v1alpha1 unchanged (limits, CEL rules, descriptions). A
pydantic subclass can retype a field but not drop one, so a model that loses
or renames fields is rebuilt here from the v1alpha1 model's field definitions,
in the same order, with the changes spliced in where the old field stood.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, create_model

from ..base import ApiModel


def derive(
    base: type[BaseModel],
    name: str,
    *,
    replace: dict[str, dict[str, tuple[Any, Any]]] | None = None,
    add: dict[str, tuple[Any, Any]] | None = None,
    json_schema_extra: Any = None,
    doc: str | None = None,
) -> Any:
    """`base`'s fields, with `replace[old]` (new name -> (type, Field)) in old's place
    (an empty dict drops it) and `add` at the end; CEL rules from `json_schema_extra`
    when given, else from `base`."""
    replace = replace or {}
    fields: dict[str, tuple[Any, Any]] = {}
    for field_name, info in base.model_fields.items():
        if field_name in replace:
            fields.update(replace[field_name])
        else:
            fields[field_name] = (info.annotation, info)
    fields.update(add or {})
    extra = (
        json_schema_extra
        if json_schema_extra is not None
        else base.model_config.get("json_schema_extra")
    )
    parent: type[BaseModel] = ApiModel
    if extra is not None:
        parent = type(
            f"_{name}Base", (ApiModel,), {"model_config": ConfigDict(json_schema_extra=extra)}
        )
    model = create_model(name, __base__=parent, __doc__=doc or base.__doc__, **fields)
    model.__module__ = base.__module__.replace(".api.", ".api.v1beta1.")
    return model
