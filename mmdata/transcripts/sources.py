"""Which subtitle file of a source to use, and parsing each one once however many clips share it.

The download stage lists a source's subtitle files in its meta (`subtitles`: file, lang, origin, ext).
Preference: the manifest's own file first (the user chose it), then by language in the configured
order, then by origin (manual before auto by default), then by format (json3 > vtt > srt > word files).
"""
from __future__ import annotations

import collections
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmdata.errors import ItemError
from mmdata.store.records import DownloadOutput
from mmdata.transcripts.assign import WordIndex
from mmdata.transcripts.formats import parse_file
from mmdata.transcripts.model import Transcript
from mmdata.transcripts.validate import validate
from mmdata.workdir import WorkDir

FORMAT_ORDER = ("json3", "vtt", "srt", "align", "json")


def _lang_rank(lang: str, languages: tuple[str, ...]) -> int | None:
    """Position of the first configured language that `lang` is (or is a variant of: en-US, en-orig)."""
    for i, want in enumerate(languages):
        if want == "*" or lang == want or lang.startswith(want + "-"):
            return i
    return None


def pick_subtitle(subs: list[dict[str, Any]], languages: tuple[str, ...],
                  origins: tuple[str, ...]) -> dict[str, Any] | None:
    """The preferred entry of a download meta's `subtitles` list, or None (a source without usable
    subtitles is normal: the language may be absent, or the clip's text is aligned to audio instead)."""
    best, best_key = None, None
    for s in subs:
        origin = s.get("origin", "auto")
        if origin not in origins:
            continue
        lang_rank = 0 if origin == "manifest" else _lang_rank(str(s.get("lang", "")), languages)
        if lang_rank is None:
            continue
        ext = str(s.get("ext") or Path(s["file"]).suffix.lstrip(".")).lower()
        fmt_rank = FORMAT_ORDER.index(ext) if ext in FORMAT_ORDER else len(FORMAT_ORDER)
        key = (origin != "manifest", lang_rank, origins.index(origin), fmt_rank, s["file"])
        if best_key is None or key < best_key:
            best, best_key = s, key
    return best


@dataclass
class Loaded:
    """A source's chosen subtitle file, parsed and validated, with its word index."""

    entry: dict[str, Any]
    transcript: Transcript
    index: WordIndex


class TranscriptCache:
    """Parses each (source, file) once; broken files are remembered as their error, so every clip of
    that source reports the same reason without parsing again. Bounded: chunks keep a source's clips
    together, so a few entries are enough."""

    def __init__(self, languages: tuple[str, ...], origins: tuple[str, ...], tolerance_s: float,
                 size: int = 8):
        self.languages, self.origins, self.tolerance_s = languages, origins, tolerance_s
        self.size = size
        self._items: collections.OrderedDict[tuple[str, str], Loaded | ItemError] = collections.OrderedDict()

    def load(self, work: WorkDir, video_id: str, dl: DownloadOutput) -> Loaded | None:
        entry = pick_subtitle([s.to_dict() for s in dl.subtitles], self.languages, self.origins)
        if entry is None:
            return None
        path = work.item_dir("download", video_id) / entry["file"]
        key = (str(work.root), f"{video_id}/{entry['file']}")
        if key not in self._items:
            self._items[key] = self._parse(path, entry, dl.duration_s)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        self._items.move_to_end(key)
        found = self._items[key]
        if isinstance(found, ItemError):
            raise ItemError(found.reason, found.detail)
        return found

    def _parse(self, path: Path, entry: dict[str, Any], duration: float | None) -> Loaded | ItemError:
        try:
            tr = parse_file(path, entry.get("origin", "manual"), entry.get("ext"))
            tr = validate(tr, duration, self.tolerance_s)
        except ItemError as e:
            return e
        return Loaded(entry, tr, WordIndex(tr.words))
