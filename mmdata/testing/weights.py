"""Random-weight stand-ins for pretrained models, placed where torch hub's cache expects the real file.

Tests and benchmarks run offline: instead of downloading hubert_base or vit_b_16, they build the very
architecture the bundle names (torchaudio's factory with the bundle's params, torchvision's factory with
weights=None), initialise it randomly, and save its state_dict in the layout the library serves (a
torchaudio ASR file keeps 3 unused fairseq rows in its output layer, which the loader drops). Features and
alignments from it are meaningless; shapes, files and records are real.
"""
from __future__ import annotations

from pathlib import Path

from mmdata.models import NamedModel, resolve


def place_random_weights(name: str, kind: str, seed: int = 0) -> Path:
    """Write random weights for the named model at its cache path (under the current TORCH_HOME)."""
    import torch

    m = resolve(name, kind)
    torch.manual_seed(seed)
    state = _random_state(m)
    path = m.cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def _random_state(m: NamedModel) -> dict:
    import torch

    if m.kind == "vision":
        import torchvision.models as tvm

        return tvm.get_model(m.name.partition(":")[0], weights=None).state_dict()
    import torchaudio.models

    bundle = m.bundle()
    factory = {"Wav2Vec2": torchaudio.models.wav2vec2_model, "WavLM": torchaudio.models.wavlm_model}
    state = factory[bundle._model_type](**bundle._params).state_dict()
    drop = tuple(getattr(bundle, "_remove_aux_axis", ()) or ())
    if drop and "aux.weight" in state:  # served layout: the rows torchaudio's loader removes, put back
        for key in ("aux.weight", "aux.bias"):
            rows = list(state[key])
            for i in sorted(drop):
                rows.insert(i, torch.zeros_like(rows[0]))
            state[key] = torch.stack(rows)
    return state
