"""The panels of the contact sheet (mmdata inspect --png). Every axis of a panel carries the panel's name
as its matplotlib label, so a test (or a person in an interactive session) can find it."""
from __future__ import annotations

import io

import numpy as np

MAX_FRAMES = 8


def _placeholder(ax, panel: str, why: str) -> None:
    ax.set_label(panel)
    ax.set_title(panel, loc="left", fontsize=10)
    ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _pick(n: int, k: int = MAX_FRAMES) -> list[int]:
    """Up to k indices spread evenly over n."""
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def _duration(meta: dict) -> float:
    return float(meta.get("duration_s") or 0.0) or 1.0


def frames(fig, spec, meta: dict, fields: dict[str, bytes]) -> None:
    from PIL import Image

    names = sorted(f for f in fields if f.startswith("frame") and f.endswith(".jpg"))
    if not names:
        why = ("no vision in this clip" if "vision" not in meta.get("modalities", [])
               else "frames not stored (write the shards with --keep frames)")
        return _placeholder(fig.add_subplot(spec), "frames", why)
    times = meta.get("frame_times") or []
    picks = _pick(len(names))
    sub = spec.subgridspec(1, MAX_FRAMES)
    for col, i in enumerate(picks):
        ax = fig.add_subplot(sub[0, col])
        ax.imshow(np.asarray(Image.open(io.BytesIO(fields[names[i]])).convert("RGB")))
        ax.set_label("frames")
        ax.set_title(f"{times[i]:.2f} s" if i < len(times) else names[i], fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if col == 0:
            ax.set_ylabel("frames")


def waveform(ax, meta: dict, fields: dict[str, bytes]) -> None:
    from mmdata.shards.inspect import decode_flac

    if "flac" not in fields:
        why = ("no speech in this clip" if "speech" not in meta.get("modalities", [])
               else "audio not stored (write the shards with --keep audio)")
        return _placeholder(ax, "waveform", why)
    try:
        samples, rate = decode_flac(fields["flac"])
    except ValueError as e:
        return _placeholder(ax, "waveform", str(e)[:120])
    t = np.arange(len(samples)) / rate
    step = max(1, len(samples) // 20000)  # enough points for the eye, few enough for a small PNG
    ax.plot(t[::step], samples[::step], linewidth=0.5)
    ax.set_label("waveform")
    ax.set_title(f"waveform ({rate} Hz, {len(samples) / rate:.2f} s)", loc="left", fontsize=10)
    ax.set_xlim(0, _duration(meta))
    ax.set_xlabel("s in clip")


def words(ax, meta: dict) -> None:
    ws = meta.get("words") or []
    if not ws:
        return _placeholder(ax, "words", "no word timings")
    for i, w in enumerate(ws):
        level = i % 3  # stagger neighbours so their labels do not overlap
        ax.barh(level, w["end"] - w["start"], left=w["start"], height=0.8, alpha=0.5)
        ax.text((w["start"] + w["end"]) / 2, level, w["w"], ha="center", va="center", fontsize=8)
    ax.set_label("words")
    ax.set_title(f"words ({len(ws)}, timing {meta.get('timing') or 'mixed'})", loc="left", fontsize=10)
    ax.set_xlim(0, _duration(meta))
    ax.set_ylim(-0.6, 2.6)
    ax.set_yticks([])
    ax.set_xlabel("s in clip")


def vision_tokens(fig, spec, meta: dict, vtok: np.ndarray | None) -> None:
    if vtok is None or vtok.ndim != 3 or not len(vtok):
        return _placeholder(fig.add_subplot(spec), "vision tokens", "no vision tokens")
    times = meta.get("frame_times") or []
    sub = spec.subgridspec(1, MAX_FRAMES)
    vmax = int(vtok.max()) or 1
    for col, i in enumerate(_pick(len(vtok))):
        ax = fig.add_subplot(sub[0, col])
        ax.imshow(vtok[i], cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest")
        ax.set_label("vision tokens")
        ax.set_title(f"[{i}] {times[i]:.2f} s" if i < len(times) else f"[{i}]", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if col == 0:
            ax.set_ylabel(f"vision tokens {list(vtok.shape[1:])}")


def speech_units(ax, meta: dict, stok: np.ndarray | None) -> None:
    if stok is None or not len(stok):
        return _placeholder(ax, "speech units", "no speech units")
    rate = meta.get("stok_rate_hz")
    end = len(stok) / rate if rate else len(stok)
    ax.imshow(stok[None, :], aspect="auto", cmap="magma", extent=(0, end, 0, 1), interpolation="nearest")
    ax.set_label("speech units")
    ax.set_title(f"speech units ({len(stok)}" + (f" at {rate} Hz)" if rate else ")"), loc="left", fontsize=10)
    ax.set_yticks([])
    if rate:
        ax.set_xlim(0, _duration(meta))
        ax.set_xlabel("s in clip")


def text_tokens(ax, ttok: np.ndarray | None) -> None:
    if ttok is None or not len(ttok):
        return _placeholder(ax, "text tokens", "no text tokens")
    ax.imshow(ttok[None, :], aspect="auto", cmap="cividis", interpolation="nearest")
    if len(ttok) <= 40:  # small enough to print every id
        for i, t in enumerate(ttok):
            ax.text(i, 0, str(int(t)), ha="center", va="center", fontsize=7,
                    bbox={"facecolor": "white", "alpha": 0.7, "linewidth": 0})
    ax.set_label("text tokens")
    ax.set_title(f"text tokens ({len(ttok)})", loc="left", fontsize=10)
    ax.set_yticks([])
