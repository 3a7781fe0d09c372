"""Typed experiment configuration: YAML in, validated once, typed objects inside.

One :class:`ExperimentConfig` describes a training run completely (model, data, losses, optimiser,
training loop, evaluation).  YAML files may name a ``base:`` file (a path relative to the file, or a
list of them) whose values they override; dotted ``key=value`` overrides (``model.pb_dsr=0.5``,
``loss.pyramid.flip.beta=0.1``) are applied last.  Every key is checked against the schema: an unknown
key or a wrong type raises :class:`ConfigError` naming the source, the key and what was expected.
"""
from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fadepth.trees import deep_merge, flatten  # noqa: F401 (also this module's API)

from fadepth.errors import InputError


class ConfigError(InputError):
    """A configuration value is missing, unknown or of the wrong type."""


class _Strict(BaseModel):
    # No NaN / infinity anywhere: `optim.lr=.inf` must fail here, not as a NaN loss after the first step.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


# ----------------------------------------------------------------------------------------- model
class ETMConfig(_Strict):
    """Equivalent transformation module (Sec. III-B, eqs. 13-19)."""

    enabled: bool = False
    pb_t: float = Field(0.1, ge=0.0, lt=1.0, description="branch drop rate of the sub-shape branches")
    r1: float = Field(0.1, ge=0.0, le=10.0, description="K x K branch drop = r1 * pb_t")
    r2: float = Field(0.5, ge=0.0, le=10.0, description="element-level dropconv rate = r2 * pb_t (eq. 14)")
    dropconv: bool = True
    # Eq. 14 prints no 1/(1 - r2*pb_t) rescale (expected training kernel (1 - r2*pb_t) w, w at inference).
    dropconv_rescale: bool = False
    init: Literal["random", "largest"] = "random"  # 'largest' = ETM# (copy the K x K kernel into every shape)
    variance: Literal["output", "input"] = "output"  # reading (A) / (B) of var(x_t) in eq. 15
    # ETM also on the disparity heads (every odd KxK conv, eq. 11's heads included; decisions row 36)
    heads: bool = True
    # pb_t over training: constant (the printed pb_t) or eq. 5's schedule with peak pb_t, like pb_dsr / pb_sd
    # (model.drop_fraction sets its M; decisions row 35)
    pb_schedule: Literal["constant", "cosine", "printed"] = "constant"


class ModelConfig(_Strict):
    name: str = "smalldepth"
    pose: str = "posenet_rn18"
    pb_dsr: float = Field(0.9, ge=0.0, lt=1.0, description="max drop rate in the DSR blocks (eq. 3)")
    pb_sd: float = Field(0.5, ge=0.0, lt=1.0, description="max drop rate in sparse downsampling (eq. 2)")
    # eq. 5 hump, Table V's starred constant rate, or eq. 5 as printed (i, not i - M: resets at M, ramps again)
    drop_schedule: Literal["cosine", "constant", "printed"] = "cosine"
    drop_fraction: float = Field(0.5, gt=0.0, lt=1.0, description="fraction of training spent ramping up (eq. 5)")
    widths: list[int] | None = None  # SmallDepth stage widths C0..C4 (None = model default)
    expansion: list[float] | None = None  # SmallDepth DSR expansion ratios per stage 1..4
    etm: ETMConfig = ETMConfig()
    init_checkpoint: str | None = None  # weights to start from (e.g. ETM# from a trained SmallDepth)
    start_depth: float | None = Field(
        None, gt=0.1, lt=100.0,
        description="eq. 12 depth the disparity heads start at (their bias); null = PyTorch's init, ~0.2 "
                    "(the paper's). Synthetic profile only: decisions row 32")
    pose_translation_scale: float = Field(
        0.01, gt=0.0, description="pose decoder's translation factor (monodepth2's 0.01); with start_depth it "
                                  "sets the scale a from-scratch run settles at (decisions row 32)")


# ------------------------------------------------------------------------------------------ data
class AugmentConfig(_Strict):
    """Sec. IV-B augmentation: ColorJitter, random scale, horizontal flip, crop."""

    enabled: bool = True
    color_jitter_p: float = Field(0.5, ge=0.0, le=1.0)
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.1
    flip_p: float = Field(0.5, ge=0.0, le=1.0)
    scale_range: tuple[float, float] = (1.0, 1.15)  # random up-scale then crop back to (height, width)


class SyntheticConfig(_Strict):
    seed: int = 0
    train_sequences: int = 8
    val_sequences: int = 1
    test_sequences: int = 2
    frames_per_sequence: int = 40
    speed_m_per_frame: float = 0.8
    cache: bool = True


class DataConfig(_Strict):
    dataset: Literal["synthetic", "kitti", "ddad"] = "synthetic"
    path: str | None = None  # dataset root on disk (kitti / ddad)
    split: str = "eigen_zhou"  # kitti: split name shipped in fadepth/data/splits or a folder path
    height: int = Field(128, ge=32)
    width: int = Field(416, ge=32)
    frame_ids: list[int] = [0, -1, 1]
    image_ext: str = ".png"
    num_workers: int = Field(0, ge=0)  # loader processes (image decoding and augmentation off the main process)
    persistent_workers: bool = True  # keep the workers across epochs (with num_workers > 0)
    pin_memory: Literal["auto"] | bool = "auto"  # page-locked batches; auto = on when training on CUDA
    augment: AugmentConfig = AugmentConfig()
    synthetic: SyntheticConfig = SyntheticConfig()

    @field_validator("frame_ids")
    @classmethod
    def _target_and_sources(cls, v: list[int]) -> list[int]:
        # The photometric loss warps source frames onto the target (0): without a source every term is 0.
        if 0 not in v or len(set(v)) != len(v) or len(v) < 2:
            raise ValueError("expected the target frame 0 and at least one source frame, each once, e.g. [0, -1, 1]")
        return v


# ---------------------------------------------------------------------------------------- losses
class CrLossConfig(_Strict):
    """L_cr: monodepth2 machinery plus CbwLoss-like terms (eq. 21; architecture note section 2)."""

    ssim_weight: float = Field(0.85, ge=0.0, le=1.0)
    photometric: float = 1.0  # lambda_p
    # lambda_d (CbwLoss depth-structure term; 0 disables). Not printed in the paper. SC-Depth's 0.5 flattens the
    # depth of a net trained from scratch (val AbsRel 0.64 -> 0.71 in 250 iterations; 0.1 -> 0.61; 0.02 -> 0.46).
    depth_consistency: float = 0.02
    feature: float = 0.1  # lambda_f (feature-perception term); 0 disables
    smoothness: float = 1e-3
    automask: bool = True
    min_reprojection: bool = True
    bidirectional: bool = True
    structure_weighting: bool = True  # weight L_p by 1 - depth-structure difference
    # False (monodepth2): out-of-view samples keep their border-padded error. True drops them from the
    # loss, which lets the net "win" by predicting near depth at the image borders (found in training).
    exclude_out_of_view: bool = False
    # L_feat compares the depth net's finest *encoder* features (appearance); "decoder" features encode
    # depth, so they change with the motion and reward inverted depth (measured on synthetic scenes).
    feature_source: Literal["encoder", "decoder"] = "encoder"
    # Fraction of training run as plain L_p + L_s (no auto-mask, L_d, L_feat, structure weight): those
    # terms trust the predicted pose, and from scratch they lock a random pose net into zero motion
    # (auto-mask) or collapse the depth scale (L_d). 0 = every term from the first iteration.
    warmup_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    num_scales: int = Field(4, ge=1, le=4)
    # One pose pass over every (target, source) pair, BatchNorm per pair: the values of one pass per pair
    # (false), faster convolutions. Pose nets that cannot split their normalisation (fbnetv3) take one per pair.
    batched_pose: bool = True
    # Resize the frame pairs the pose net sees by this factor (area); 1 = full resolution (the paper's). A
    # different computation: measured in benchmarks/README.md (issue 11), not a default anywhere.
    pose_input_scale: float = Field(1.0, gt=0.0, le=1.0)
    min_depth: float = 0.1
    max_depth: float = 100.0


class PyramidLevelConfig(_Strict):
    """One level k of the pyramid loss (eq. 20): alpha_k L_k + beta_k phi(d) + gamma_k phi(f)."""

    enabled: bool = False
    alpha: float = 1.0
    beta: float = 0.1
    gamma: float = 0.1
    phi: Literal["prob", "l1"] = "prob"
    size: tuple[int, int] | None = None  # (H, W) for lr / hr; None = scale from `scale`
    scale: float = 1.0


class PyramidConfig(_Strict):
    enabled: bool = False
    alpha_cr: float = 1.0
    lr: PyramidLevelConfig = PyramidLevelConfig(alpha=0.5, beta=1.0, gamma=0.5, scale=0.75)
    hr: PyramidLevelConfig = PyramidLevelConfig(alpha=0.5, beta=0.5, gamma=0.1, scale=1.25)
    flip: PyramidLevelConfig = PyramidLevelConfig(alpha=1.0, beta=0.1, gamma=0.5)
    color: PyramidLevelConfig = PyramidLevelConfig(alpha=1.0, beta=0.1, gamma=0.1, phi="l1")
    mode: Literal["sum", "per_level"] = "sum"  # per_level = gradient accumulation (Table X hatted schemes)
    use_cr: bool = False  # rescale every level's outputs to cr before the loss (Table VIII a4/a6)
    # lr / hr without `size`: scale x cr snapped to the coarsest 32/16/8/... grid within this fraction of the exact
    # scale in both axes (128x416 -> 96x320, the paper's); 0 = the exact scale on the net's grid (decisions row 33)
    snap_tolerance: float = Field(0.05, ge=0.0, lt=0.5)
    # phi of eq. 22: symmetric KL (minimal at b = a); "sym_ce" = the printed cross-entropy (= sym_kl + entropy)
    phi_kind: Literal["sym_kl", "sym_ce"] = "sym_kl"


class ApxConfig(_Strict):
    """APX distillation from a frozen teacher (eq. 28)."""

    enabled: bool = False
    teacher: str = "hqdecv2"
    teacher_checkpoint: str | None = None
    # Plumbing checks only (smoke profiles): distil from a randomly initialised teacher, with a warning.
    allow_random_teacher: bool = False
    teacher_height: int | None = None  # run the teacher at its own resolution and resize (None = student's)
    teacher_width: int | None = None
    lambda_enc: float = 1.0
    lambda_dec: float = 1.0
    lambda_disp: float = 1.0
    mask: Literal["median", "none"] = "median"
    mask_k: float = 0.3
    adapter: Literal["conv", "mean"] = "conv"
    cache_dir: str | None = None


class LossConfig(_Strict):
    cr: CrLossConfig = CrLossConfig()
    pyramid: PyramidConfig = PyramidConfig()
    apx: ApxConfig = ApxConfig()


# --------------------------------------------------------------------------------- optim / train
class OptimConfig(_Strict):
    lr: float = Field(1e-4, gt=0.0)
    weight_decay: float = Field(1e-2, ge=0.0)
    # AdamW weight decay of ETM's p_t (the per-branch scales of eq. 15b); null = weight_decay (decisions row 39)
    weight_decay_etm: float | None = Field(None, ge=0.0)
    betas: tuple[float, float] = (0.9, 0.999)
    scheduler: Literal["none", "step", "cosine"] = "step"
    step_fraction: float = Field(0.75, gt=0.0, le=1.0)  # step scheduler: decay at this fraction
    gamma: float = 0.1
    grad_clip: float | None = None


class TrainConfig(_Strict):
    iterations: int = Field(2000, ge=0)
    batch_size: int = Field(8, ge=1)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    log_every: int = Field(50, ge=1)
    val_every: int = Field(0, ge=0)  # 0 = only at the end
    checkpoint_every: int = Field(0, ge=0)  # 0 = only at the end
    out_dir: str = "runs/train"
    deterministic: bool = True
    channels_last: bool = True  # NHWC weights (and CUDA inputs): ~15% faster training steps on CPU (depthwise convs)
    progress: bool = True
    # Autocast dtype of the forward pass (weights, optimiser and loss reduction stay fp32). fp16 adds a
    # GradScaler and needs CUDA (refused on CPU); bf16 runs on CPU and CUDA.
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    compile: bool = False  # torch.compile the forward pass and the objective as one graph (inductor)
    # Capture the whole step (forward, loss, backward, AdamW) in CUDA graphs and replay it: CUDA only, fp32 / bf16
    # (fp16's GradScaler reads the host), static shapes; one capture per loss structure (L_cr warm-up, then full).
    cuda_graphs: bool = False


class EvalConfig(_Strict):
    protocol: Literal["auto", "eigen", "eigen_benchmark", "ddad", "synthetic"] = "auto"
    align: Literal["median", "adasearch", "none"] = "median"
    split: str = "test"
    max_images: int | None = Field(None, ge=1)
    gt_path: str | None = None  # gt_depths.npz for kitti


class ExperimentConfig(_Strict):
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    loss: LossConfig = LossConfig()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()

    def to_flat_dict(self) -> dict[str, Any]:
        """Dotted keys -> plain values (for MLflow params and dry-run tables)."""
        return flatten(self.model_dump(mode="json"))

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


# ------------------------------------------------------------------------------------ helpers
def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set {key!r}: {part!r} is a value, not a section")
        node = child
    node[parts[-1]] = value


def check_key(key: str, schema: type[BaseModel] = ExperimentConfig) -> None:
    """Raise ConfigError unless the dotted `key` names a field of the schema."""
    model: Any = schema
    for i, part in enumerate(key.split(".")):
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            where = ".".join(key.split(".")[:i]) or "<top level>"
            known = ", ".join(sorted(fields)) if fields else "(none: it is a value)"
            raise ConfigError(f"unknown key {key!r}: {where} has no field {part!r}{did_you_mean(key, schema)}; "
                              f"known: {known}")
        model = fields[part].annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            continue
        model = None if i < len(key.split(".")) - 1 else model


def did_you_mean(key: str, schema: type[BaseModel] = ExperimentConfig) -> str:
    """`` (did you mean 'model.pb_dsr'?)`` for a mistyped dotted key (difflib), or '' when nothing is close."""
    known = schema_keys(schema)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    if not close:  # a typo in the last part only: compare it with its siblings
        parent, _, last = key.rpartition(".")
        siblings = [k.rpartition(".")[2] for k in known if k.rpartition(".")[0] == parent]
        close = [f"{parent}.{m}" if parent else m for m in difflib.get_close_matches(last, siblings, n=1, cutoff=0.6)]
    return f" (did you mean {close[0]!r}?)" if close else ""


def schema_keys(schema: type[BaseModel] = ExperimentConfig, prefix: str = "") -> list[str]:
    """Every dotted key of a schema, sections included (``model``, ``model.etm``, ``model.etm.pb_t``, ...)."""
    out = []
    for name, info in schema.model_fields.items():
        out.append(prefix + name)
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            out += schema_keys(info.annotation, f"{prefix}{name}.")
    return out


def parse_override(text: str) -> tuple[str, Any]:
    """`model.pb_dsr=0.5` -> ("model.pb_dsr", 0.5); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from exc
    return key.strip(), value


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):  # None: an empty file (not the built-in recipe: that is no --config)
        got = "an empty file" if data is None else type(data).__name__
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level, got {got}")
    return data


def load_tree(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a YAML config and resolve its `base:` chain into one nested dict (no validation)."""
    path = Path(path).resolve()
    if path in _seen:
        raise ConfigError(f"{path}: circular base: chain {' -> '.join(map(str, _seen + (path,)))}")
    data = read_yaml(path)
    bases = data.pop("base", None)
    merged: dict[str, Any] = {}
    for base in [bases] if isinstance(bases, str) else (bases or []):
        base_path = (path.parent / base) if not Path(base).is_absolute() else Path(base)
        if not base_path.is_file():
            raise ConfigError(f"{path}: field 'base': file {base!r} not found (looked at {base_path})")
        merged = deep_merge(merged, load_tree(base_path, _seen + (path,)))
    return deep_merge(merged, data)


def validate(tree: Mapping[str, Any], source: str = "<config>") -> ExperimentConfig:
    """Validate `tree` on top of the full defaults.

    Merging onto the defaults first keeps the per-level defaults of nested sections: setting only
    `loss.pyramid.color.beta` must not reset the color level's `phi: l1` to the generic default.
    """
    try:
        return ExperimentConfig.model_validate(deep_merge(ExperimentConfig().model_dump(), tree))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One line per bad key; a single bad key gives a single line ``source: key: problem (got value)``."""
    items = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            items.append(f"{key}: unknown key{did_you_mean(key)}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            items.append(f"{key}: {msg} (got {err.get('input')!r})")
    if len(items) == 1:
        return f"{source}: invalid configuration: {items[0]}"
    return "\n".join([f"{source}: invalid configuration"] + [f"  {item}" for item in items])


def load_config(
    path: str | Path | None = None, overrides: Sequence[str] | Mapping[str, Any] = ()
) -> ExperimentConfig:
    """Load a YAML file (with `base:` inheritance), apply dotted overrides, validate."""
    tree = load_tree(path) if path is not None else {}
    items = overrides.items() if isinstance(overrides, Mapping) else map(parse_override, overrides)
    for key, value in items:
        check_key(key)
        set_dotted(tree, key, value)
    return validate(tree, str(path) if path else "overrides" if overrides else "<defaults>")


def dump_config(cfg: ExperimentConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
