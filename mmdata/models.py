"""Pretrained models by name: the one place that turns a name into its library's own bundle, its weights
file in torch hub's cache, and a state_dict.

    speech  (fit-speech --encoder)      hubert_base, wavlm_base_plus, ... = torchaudio.pipelines.<NAME.upper()>
    forced  (align --forced-model)      mms_fa, wav2vec2_base_960h (= WAV2VEC2_ASR_BASE_960H), or any
                                        torchaudio ASR bundle name
    vision  (fit-vision --encoder)      vit_b_16, vit_l_16 = torchvision's model with its DEFAULT weights
                                        (`vit_b_16:IMAGENET1K_V1` names another member of its weights enum)

The weights file is the one the library itself would fetch: the bundle's URL, kept where
`torch.hub.load_state_dict_from_url` keeps it (`torch.hub.get_dir()/checkpoints/<file name>`, i.e.
$TORCH_HOME/hub/checkpoints). `weights_file` finds it there or downloads it there (with torchvision's hash
check); offline (MMDATA_OFFLINE=1, or a failed download) it is a ConfigError that names the URL to fetch and
the exact path to put it at, raised while configs are built, before any work. Files are read with
`torch.load(weights_only=True)`: a weights file is data, never code.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mmdata.errors import ConfigError

OFFLINE_ENV = "MMDATA_OFFLINE"  # "1": never download, a missing weights file is an error at once
# names people use for bundles whose torchaudio name says more (ASR = fine-tuned with CTC labels)
ALIASES = {
    "wav2vec2_base_960h": "WAV2VEC2_ASR_BASE_960H",
    "wav2vec2_large_960h": "WAV2VEC2_ASR_LARGE_960H",
    "wav2vec2_large_lv60k_960h": "WAV2VEC2_ASR_LARGE_LV60K_960H",
    "hubert_large_960h": "HUBERT_ASR_LARGE",
}
# the names README and --help show (any torchaudio bundle / torchvision ViT name works)
KNOWN = {
    "speech": ("hubert_base", "hubert_large", "wavlm_base", "wavlm_base_plus", "wavlm_large", "wav2vec2_base"),
    "forced": ("mms_fa", "wav2vec2_base_960h", "wav2vec2_large_960h"),
    "vision": ("vit_b_16", "vit_l_16"),
}


OPTION = {"speech": "fit-speech --encoder", "forced": "align --forced-model", "vision": "fit-vision --encoder"}


@dataclass(frozen=True)
class NamedModel:
    name: str  # as the user wrote it
    kind: str  # speech | forced | vision
    source: str  # the library object: torchaudio.pipelines.HUBERT_BASE, torchvision...ViT_B_16_Weights.IMAGENET1K_V1
    url: str  # where the library fetches its weights

    @property
    def file_name(self) -> str:
        return os.path.basename(urlparse(self.url).path)

    def cache_path(self) -> Path:
        """Where torch.hub.load_state_dict_from_url keeps this URL's file (TORCH_HOME is read now)."""
        import torch.hub

        return Path(torch.hub.get_dir()) / "checkpoints" / self.file_name

    def bundle(self):
        """The library object: a torchaudio Wav2Vec2Bundle, or a torchvision weights enum member."""
        import importlib

        module, _, attr = self.source.rpartition(".")
        if self.kind == "vision":
            enum_module, _, enum = module.rpartition(".")
            return getattr(getattr(importlib.import_module(enum_module), enum), attr)
        return getattr(importlib.import_module(module), attr)

    def record(self) -> dict[str, Any]:
        """What a tokenizer config or an align meta records about the model (its sha256 beside it)."""
        return {"model": self.source, "weights_url": self.url}


def require(name: str, kind: str, checkpoint: str | Path | None = None) -> NamedModel:
    """What a config checks while it is built, before any work: the name resolves, and without a local
    checkpoint its weights are in torch hub's cache (or downloaded there now); else a ConfigError (exit 2)
    naming the file to fetch and where to put it."""
    named = resolve(name, kind)
    if not checkpoint:
        weights_file(named)
    return named


def resolve(name: str, kind: str) -> NamedModel:
    """The model a name means for this kind, or a ConfigError listing the known names."""
    if kind == "vision":
        return _torchvision(name)
    import torchaudio.pipelines as pipelines

    attr = ALIASES.get(name.lower(), name.upper())
    bundle = getattr(pipelines, attr, None)
    ok = bundle is not None and hasattr(bundle, "_params") and hasattr(bundle, "_path")
    if ok and kind == "forced":
        ok = hasattr(bundle, "get_labels")  # CTC labels: only fine-tuned (ASR) and forced-alignment bundles
    if not ok:
        labels = " with CTC labels" if kind == "forced" else ""
        raise ConfigError(f"{OPTION[kind]} {name!r} is not a pretrained {kind} model: one of "
                          f"{', '.join(KNOWN[kind])}, or a torchaudio.pipelines bundle name{labels}")
    path = bundle._path
    url = path if path.startswith("https") else f"https://download.pytorch.org/torchaudio/models/{path}"
    return NamedModel(name, kind, f"torchaudio.pipelines.{attr}", url)  # the URL rule of torchaudio's _get_state_dict


def _torchvision(name: str) -> NamedModel:
    from mmdata.environment import import_library

    tvm = import_library("torchvision.models", f"--encoder {name}")
    arch, _, member = name.partition(":")
    if not arch.startswith("vit_") or arch not in tvm.list_models(module=tvm):
        raise ConfigError(f"{OPTION['vision']} {name!r} is not a torchvision ViT: one of "
                          f"{', '.join(KNOWN['vision'])} (the patch tokenizer needs a VisionTransformer), "
                          "optionally with ':WEIGHTS' from its weights enum")
    enum = tvm.get_model_weights(arch)
    try:
        weights = enum[member] if member else enum.DEFAULT
    except KeyError:
        raise ConfigError(f"{OPTION['vision']} {name!r}: {enum.__name__} has no {member!r}; one of "
                          f"{', '.join(w.name for w in enum)}") from None
    return NamedModel(name, "vision", f"torchvision.models.{enum.__name__}.{weights.name}", weights.url)


def weights_file(m: NamedModel) -> Path:
    """The model's weights file in torch hub's cache, downloaded there first when it is missing."""
    path = m.cache_path()
    if path.is_file():
        return path
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        raise missing_weights(m, f"{OFFLINE_ENV} is set")
    import re

    import torch.hub

    # torchvision's files carry a sha256 prefix in their name, checked as torchvision's own loader does
    match = re.search(r"-([a-f0-9]*)\.", m.file_name) if m.kind == "vision" else None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(m.url, str(path), match.group(1) if match else None, progress=True)
    except Exception as e:  # noqa: BLE001 - no network, refused, truncated, wrong hash: all mean "not here"
        raise missing_weights(m, f"the download failed: {type(e).__name__}: {str(e)[:200]}") from e
    return path


def missing_weights(m: NamedModel, why: str) -> ConfigError:
    return ConfigError(f"{m.kind} model {m.name!r} ({m.source}) needs its weights file and it is not in torch "
                       f"hub's cache ({why}). Fetch {m.url} and put it at {m.cache_path()} (set TORCH_HOME "
                       f"to use another cache folder), or give a local file with --checkpoint")


def read_state_dict(path: str | Path, what: str) -> Any:
    """torch.load(path, weights_only=True) on the CPU; a file that is not one is a ConfigError."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad or unsafe pickle
        raise ConfigError(f"{what} {path} is not a readable torch weights file: {e}") from e


def state_dict(m: NamedModel, checkpoint: str | Path | None = None) -> dict[str, Any]:
    """The model's state_dict in the layout its torch module has, from `checkpoint` when given, else from
    the cache."""
    state = read_state_dict(checkpoint or weights_file(m), "--checkpoint" if checkpoint else f"{m.name} weights")
    if not isinstance(state, dict):
        raise ConfigError(f"{checkpoint or m.cache_path()} holds no state_dict")
    return to_model_layout(m, state)


def to_model_layout(m: NamedModel, state: dict[str, Any]) -> dict[str, Any]:
    """A torchaudio ASR file as served keeps 3 unused fairseq rows in its output layer: they are dropped as
    torchaudio's own loader drops them (a state_dict already without them is taken as it is)."""
    if m.kind == "vision":
        return state
    bundle = m.bundle()
    drop = tuple(getattr(bundle, "_remove_aux_axis", ()) or ())
    aux = state.get("aux.weight")
    if drop and aux is not None and aux.shape[0] == (bundle._params.get("aux_num_out") or 0) + len(drop):
        from torchaudio.pipelines._wav2vec2.utils import _remove_aux_axes

        _remove_aux_axes(state, drop)
    return state


def build(m: NamedModel, checkpoint: str | Path | None = None):
    """The model in eval mode with its weights: torchaudio's wav2vec2/WavLM factory with the bundle's params,
    or the torchvision factory (weights=None: the weights come from `state_dict`, not a second download)."""
    if m.kind == "vision":
        import torchvision.models as tvm

        model, where = tvm.get_model(m.name.partition(":")[0], weights=None), m.name
    else:
        import torchaudio.models

        bundle = m.bundle()
        factory = {"Wav2Vec2": torchaudio.models.wav2vec2_model, "WavLM": torchaudio.models.wavlm_model}
        model, where = factory[bundle._model_type](**bundle._params), m.source
    try:
        model.load_state_dict(state_dict(m, checkpoint))
    except RuntimeError as e:
        raise ConfigError(f"{checkpoint or m.cache_path()} does not fit {where}: {str(e)[:400]}") from e
    return model.eval()


def normalizes_waveform(m: NamedModel) -> bool:
    """Whether the bundle's model expects each input waveform layer-normalised (the large models)."""
    return m.kind != "vision" and bool(getattr(m.bundle(), "_normalize_waveform", False))
