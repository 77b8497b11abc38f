"""A run is one validated configuration object, hashed, stored beside its results and shown in the app.

Every entry point (CLI, app, tests) builds it the same way: ``RunConfig(**fields)`` or
``RunConfig.from_file(path)``. ``run_hash`` covers everything that changes a number; ``heatmap_key``
covers only what changes the raw grids, so box and metric settings never trigger a forward pass.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from surgery_core.errors import InputError
from surgery_core.eval.boxes import DEFAULT_SWEEP_FIXED, DEFAULT_SWEEP_PERCENTILES, BoxParams
from surgery_core.eval.quality import SEED_QUALITY_PERCENTILES
from surgery_core.model.methods import DEFAULT_METHODS, METHODS
from surgery_core.model.prompts import DEFAULT_PROMPT_SET, PROMPT_SETS, prompt_set_fingerprint

# Bump when the grid computation changes in a way the other key fields do not capture.
HEATMAP_VERSION = 1
SEED_IOUS = (0.05, 0.10, 0.15, 0.20, 0.30, 0.50)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataConfig(_Frozen):
    kind: Literal["demo", "dior", "coco", "samples"] = Field(
        "demo", description="demo: generated scenes; samples: the five real DIOR pairs shipped; dior; coco")
    root: str | None = Field(None, description="DIOR root, or the COCO annotation JSON")
    images: str | None = Field(None, description="image folder for COCO")
    split: str = "test"
    limit: int | None = Field(None, ge=1, description="first N images of the split")


class ModelConfig(_Frozen):
    arch: str = "Demo-ViT-32"
    checkpoint: str | None = Field(None, description="local state dict; None with the demo arch = shipped weights")
    quickgelu: bool = False
    name: str | None = Field(None, description="catalog or registered model (surgery models): sets arch, QuickGELU "
                                               "and sha256; its file is found on this machine (or at checkpoint)")
    sha256: str | None = Field(None, description="the checkpoint's expected sha256 (set from the model's name)")
    allow_sha256_mismatch: bool = Field(False, description="load a named model whose file's sha256 differs from "
                                                           "its published one (the run says so)")

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data):
        """A model name sets architecture, QuickGELU and sha256 together; a contradicting value is refused (an
        OpenAI-initialised model without QuickGELU cannot be built through its name)."""
        if not isinstance(data, dict) or not data.get("name"):
            return data
        from surgery_core.model.local_models import find_model

        try:
            entry = find_model(str(data["name"]))
        except InputError as exc:
            raise ValueError(exc.problem) from None
        data = dict(data)
        for key, want in (("arch", entry.arch), ("quickgelu", entry.quickgelu), ("sha256", entry.sha256)):
            given = data.get(key)
            if given is not None and given != want:
                why = (" (it was initialised from OpenAI CLIP, whose weights need QuickGELU)" if key == "quickgelu"
                       and want else "")
                flag = {"arch": "--arch / ", "quickgelu": "--quickgelu / "}.get(key, "")
                raise ValueError(f"model {entry.name} has {key} {want}{why}, but {key} {given} was asked; leave "
                                 f"{flag}model.{key} out (the name sets it)")
            data[key] = want
        return data


class InputConfig(_Frozen):
    size: int | None = Field(None, ge=32, description="square input side in px; None = the model's own")
    window: int | None = Field(None, ge=32, description="sliding-window side in px; None = one pass")
    stride: int | None = Field(None, ge=1, description="sliding-window stride in px; None = the window")
    posembed: Literal["official", "shared"] = Field(
        "official", description="positional-embedding resize off the model's own grid: official = as each "
                                "method's official code does (one tower pass per rule); shared = one bicubic "
                                "resize for every method (one pass, not official)")

    @property
    def at_models_own_size(self) -> bool:
        """No size and no window given: every pass runs at the model's own grid, so no resize rule applies."""
        return self.size is None and self.window is None

    def resizes(self, native: int) -> bool:
        """Whether the tower's input (the window, or the whole squashed input) differs from ``native`` px, the
        model's own size: the positional embedding is then resized (``posembed``)."""
        size = self.size or native
        crop = self.window if self.window and self.window < size else size
        return crop != native


#: (section, field, default) of fields added after runs and result files were stored: while at their default
#: they are left out of the run hash (section None: a top-level field) ...
_HASH_NEUTRAL_DEFAULTS = (("boxes", "refine", "none"), (None, "pointing_tolerance_px_at_224", 15.0),
                          ("model", "name", None), ("model", "sha256", None), ("model", "allow_sha256_mismatch", False),
                          ("boxes", "rule", "percentile"), ("boxes", "fixed_value", 0.5),
                          (None, "sweep_fixed_values", list(DEFAULT_SWEEP_FIXED)))
#: ... and these also out of every file that dumps the configuration (``refine`` has been written since before
#: the result files' schema was fixed, so it stays; the box rule's fields and the fixed-value sweep are written, so
#: that every file names its rule; ``input.posembed`` is in the hash where the input is resized, see canonical_json).
_FILE_NEUTRAL_DEFAULTS = tuple(r for r in _HASH_NEUTRAL_DEFAULTS
                               if r[0] == "model" or r[1] == "pointing_tolerance_px_at_224") + \
    (("input", "posembed", "official"),)


def _without_neutral_defaults(doc: dict, rules) -> dict:
    """``doc`` (a JSON dump of a configuration) without the fields of ``rules`` that are at their default."""
    for section, name, default in rules:
        where = doc if section is None else doc[section]
        if where.get(name) == default:
            del where[name]
    return doc


class RunConfig(_Frozen):
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    input: InputConfig = InputConfig()
    methods: tuple[str, ...] = DEFAULT_METHODS
    surgery_depth: int = Field(6, ge=0, description="final blocks that also run the v-v and GEM paths")
    prompt_set: str = DEFAULT_PROMPT_SET
    classes: tuple[str, ...] | None = Field(None, description="class list; None = the dataset's")
    boxes: BoxParams = BoxParams()
    protocols: tuple[Literal["present", "open"], ...] = ("present", "open")
    iou_thresholds: tuple[float, ...] = SEED_IOUS
    interps: tuple[Literal["voc07", "voc", "coco"], ...] = ("voc07", "voc", "coco")
    sweep_percentiles: tuple[float, ...] = DEFAULT_SWEEP_PERCENTILES
    quality_percentiles: tuple[float, ...] = SEED_QUALITY_PERCENTILES
    sweep_fixed_values: tuple[float, ...] = Field(DEFAULT_SWEEP_FIXED, description="values of the 0-1 map the "
                                                  "threshold sweep cuts at under the fixed-value box rule")
    figure_samples: int = Field(10, ge=0, description="three-column PNGs per method")
    pointing_tolerance_px_at_224: float = Field(
        15.0, ge=0, description="pointing game: a hit may miss the GT box by this many px, on a 224-pixel image "
                                "(scaled per axis to the image's size)")

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, v):
        unknown = [m for m in v if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown heatmap methods {unknown}; registered: {list(METHODS)}")
        return v

    @field_validator("sweep_percentiles", "quality_percentiles")
    @classmethod
    def _percentiles_in_range(cls, v):
        bad = [p for p in v if not 0.0 <= p <= 100.0]
        if bad:
            raise ValueError(f"percentiles must be between 0 and 100, got {', '.join(f'{p:g}' for p in bad)}")
        if not v:
            raise ValueError("needs at least one percentile")
        return v

    @field_validator("iou_thresholds")
    @classmethod
    def _ious_in_range(cls, v):
        bad = [t for t in v if not 0.0 < t <= 1.0]
        if bad:
            raise ValueError(f"IoU thresholds must lie in (0, 1], got {', '.join(f'{t:g}' for t in bad)}")
        if not v:
            raise ValueError("needs at least one IoU threshold")
        return v

    @field_validator("sweep_fixed_values")
    @classmethod
    def _fixed_in_range(cls, v):
        bad = [x for x in v if not 0.0 <= x <= 1.0]
        if bad:
            raise ValueError(f"fixed thresholds are values of the 0-1 map, got {', '.join(f'{x:g}' for x in bad)}")
        if not v:
            raise ValueError("needs at least one value")
        return v

    @field_validator("prompt_set")
    @classmethod
    def _known_prompts(cls, v):
        if v not in PROMPT_SETS:
            raise ValueError(f"unknown prompt set {v!r}; known: {list(PROMPT_SETS)}")
        return v

    @classmethod
    def from_file(cls, path: str | Path) -> "RunConfig":
        """The configuration in a JSON file; InputError naming the file, the key and the rule otherwise."""
        doc = read_config_file(path)
        try:
            return cls.model_validate(doc)
        except ValidationError as exc:
            raise InputError(path, explain_validation_error(exc)) from None

    def canonical_json(self) -> str:
        # Fields added after runs were stored leave the hash of a configuration at their default unchanged.
        doc = _without_neutral_defaults(self.model_dump(mode="json"), _HASH_NEUTRAL_DEFAULTS)
        # input.posembed changes no number at the model's own size: left out there at its default (official),
        # named everywhere else (a size or window given: the official rules and the shared one differ).
        if self.input.posembed == "official" and self.input.at_models_own_size:
            del doc["input"]["posembed"]
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))

    def to_file_dict(self) -> dict:
        """The configuration as every result file writes it (``run.json``, report headers, snapshots): the JSON
        dump, without the fields added since the files' schema was fixed while they are at their default."""
        return _without_neutral_defaults(json.loads(self.model_dump_json()), _FILE_NEUTRAL_DEFAULTS)

    @property
    def run_hash(self) -> str:
        """12 hex digits over the whole configuration: the same hash means the same numbers."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:12]


#: The CPU preprocessing of ``images.squash`` as the heatmap key records it.
CPU_RESIZE = "squash, cv2 bicubic"


def heatmap_key(cfg: RunConfig, model_identity: dict, classes: tuple[str, ...], input_size: int,
                resize: str = CPU_RESIZE, native_size: int | None = None) -> str:
    """16 hex digits over what determines raw grids: model content, depth, input (size, windows, how images were
    decoded and resized, the positional-embedding rules when the tower's input is not ``native_size``, the
    model's own; None = not resized), prompts, classes.

    ``posembed: shared`` is what every grid was computed with before the rules were told apart, so its key is
    the key grids were stored under then; the official rules are keyed apart where they resize."""
    inp = {"size": input_size, "window": cfg.input.window, "stride": cfg.input.stride, "resize": resize}
    if cfg.input.posembed == "official" and native_size is not None \
            and cfg.input.model_copy(update={"size": input_size}).resizes(native_size):
        inp["posembed"] = "official"
    doc = {
        "version": HEATMAP_VERSION, "model": model_identity, "depth": cfg.surgery_depth, "input": inp,
        "prompts": [cfg.prompt_set, prompt_set_fingerprint(cfg.prompt_set)], "classes": list(classes),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------ errors in user terms
def read_config_file(path: str | Path) -> dict:
    """The JSON object in a configuration file, unvalidated; InputError naming the file when it is missing,
    unreadable, not JSON or not an object."""
    path = Path(path)
    if path.is_dir():
        raise InputError(path, "is a folder, not a run configuration file (JSON)")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(path, "configuration file not found") from None
    except UnicodeDecodeError:
        raise InputError(path, "not a run configuration: the file is not UTF-8 text (JSON expected)") from None
    except OSError as exc:
        raise InputError(path, f"configuration file cannot be read ({exc.strerror or exc})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(doc, dict):
        raise InputError(path, f"a run configuration is a JSON object ({{\"data\": ..., \"model\": ...}}), "
                               f"this file holds a JSON {_json_kind(doc)}")
    return doc


def _json_kind(v) -> str:
    return {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(type(v), "null")


def _field_info(model: type[BaseModel], loc: tuple):
    """(FieldInfo of ``loc``'s last named field, the model that holds it), walking nested configurations."""
    info, owner = None, model
    for part in loc:
        if not isinstance(part, str):
            continue  # an index into a tuple: the constraint is the field's own
        fields = getattr(owner, "model_fields", None)
        if not fields or part not in fields:
            return None, owner
        info = fields[part]
        ann = info.annotation
        owner = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return info, owner


def _bounds(info) -> str | None:
    """The numeric range a field allows, in words (``must be between 0 and 100``), from its constraints."""
    if info is None:
        return None
    lo = hi = None
    lo_strict = hi_strict = False
    for m in info.metadata:
        for attr, strict, is_lo in (("ge", False, True), ("gt", True, True), ("le", False, False),
                                    ("lt", True, False)):
            v = getattr(m, attr, None)
            if v is None:
                continue
            if is_lo:
                lo, lo_strict = v, strict
            else:
                hi, hi_strict = v, strict
    if lo is not None and hi is not None and not lo_strict and not hi_strict:
        return f"must be between {lo:g} and {hi:g}"
    parts = []
    if lo is not None:
        parts.append(f"greater than {lo:g}" if lo_strict else f"at least {lo:g}")
    if hi is not None:
        parts.append(f"less than {hi:g}" if hi_strict else f"at most {hi:g}")
    return "must be " + " and ".join(parts) if parts else None


def _shown(v) -> str:
    """A configuration value as it reads in JSON."""
    try:
        return json.dumps(v)
    except (TypeError, ValueError):
        return repr(v)


def explain_validation_error(exc: ValidationError, names: dict[tuple, str] | None = None,
                             source: str | Path | None = None, model: type[BaseModel] | None = None) -> str:
    """One line per problem of a validation error, joined by "; ", in the user's terms: which option or
    configuration key, what was given, what is allowed (``--percentile -5: must be between 0 and 100``).

    names: the user's name for a configuration path, e.g. ``{("boxes", "percentile"): "--percentile"}`` for
    values that came from command-line options; other paths are named as configuration keys
    (``boxes.percentile``), followed by ``in <source>`` when ``source`` (the file) is given.
    """
    model = model or RunConfig
    names = names or {}
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(err.get("loc", ()))
        field_loc = tuple(p for p in loc if isinstance(p, str))
        flag = names.get(field_loc)
        key = ".".join(str(p) for p in loc) or "the configuration"
        where = f" (in {source})" if source and not flag else ""
        given = err.get("input")
        kind = err.get("type", "")
        info, _ = _field_info(model, loc)
        if kind == "extra_forbidden":
            holder = model
            if len(loc) > 1:
                parent, _ = _field_info(model, loc[:-1])
                holder = parent.annotation if parent is not None else None
            known = list(getattr(holder, "model_fields", None) or {})
            out.append(f"unknown configuration key {key}{where}" + (f"; known here: {', '.join(known)}"
                                                                   if known else ""))
            continue
        if kind == "missing":
            out.append(f"configuration key {key}{where}: required, missing")
            continue
        if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
            rule = _bounds(info) or err["msg"].replace("Input should be", "must be")
        elif kind == "literal_error":
            rule = f"must be {err['ctx']['expected']}"
        elif kind == "value_error":
            rule = str(err["ctx"]["error"]) if err.get("ctx") else err["msg"].removeprefix("Value error, ")
            held = getattr(info, "annotation", None)
            if isinstance(held, type) and issubclass(held, BaseModel):  # a rule over a whole section: say it
                out.append(f"{rule}{' (in ' + str(source) + ')' if source else ''}")
                continue
        elif kind == "model_type":
            rule = "must be a JSON object of its keys"
        else:
            rule = err["msg"].replace("Input should be", "must be")
        if flag:  # as typed on the command line: --percentile -5
            shown = ",".join(map(str, given)) if isinstance(given, (list, tuple)) else given
            shown = f"{shown:g}" if isinstance(shown, float) else shown
            out.append(f"{flag} {shown}: {rule}")
        elif kind == "model_type":
            out.append(f"configuration key {key}{where}: {rule}")
        else:
            out.append(f"configuration key {key} = {_shown(given)}{where}: {rule}")
    return "; ".join(out) or str(exc).splitlines()[0]
