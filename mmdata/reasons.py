"""Every error reason mmdata writes, in one table: its name, the stage(s) that emit it, what it means and
what to do about it.

A reason is the `reason` of an error row (`ItemError(reason, detail)` in a stage, `worker_crashed` and
`internal_error` from the runner), of a sample `mmdata shard` rejects or leaves out (`<stage>:<reason>`
keys), or of a sample training skips. Each meaning has one name. A few reasons are families built from a
part: `http_<status>`, `missing_<stage>`, `<step>_timeout`; their entry says which parts exist.

    describe("http_404")              # the http_<status> entry
    describe("frames:corrupt_file")   # a shard's left_out key: the reason after the stage

The README table "What each error reason means" is this table: `python -m mmdata.reasons --markdown`
prints it, and tests/test_reasons.py checks that the README holds exactly that, and that every reason the
code raises is here.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Reason:
    name: str  # as written in the rows; a family has one <part>, e.g. "http_<status>"
    stages: tuple[str, ...]  # where it is emitted ("any": every stage)
    meaning: str  # one line
    action: str  # what to do, one line
    parts: str = ""  # a family only: a regular expression for its <part>

    @property
    def is_family(self) -> bool:
        return "<" in self.name

    def matches(self, reason: str) -> bool:
        if not self.is_family:
            return reason == self.name
        before, _, rest = self.name.partition("<")
        after = rest.partition(">")[2]
        return re.fullmatch(re.escape(before) + f"(?:{self.parts})" + re.escape(after), reason) is not None


UPSTREAM_STAGES = "download|frames|audio|align|filter|signatures|dedup|quantize"
TOOL_STEPS = "probe|scan|decode|remux|audio"  # the `what` of mmdata.tools.run_tool calls

REASONS: tuple[Reason, ...] = (
    # --- download ---------------------------------------------------------------------------------------
    Reason("http_<status>", ("download",),
           "the server answered that HTTP status (404 not found, 403 forbidden, 5xx; 429 is `rate_limited`)",
           "404/410: a dead link, drop the row; 403: the site refuses downloads (on YouTube, see "
           "`js_runtime_missing`); 5xx is retried with backoff: re-run later with `--retry-failed`",
           parts=r"\d{3}"),
    Reason("timeout", ("download",),
           "the server sent no data for `--timeout` seconds, or the download ran far too long (after `--retries`)",
           "a slow or stalled server: raise `--timeout`, or re-run with `--retry-failed`"),
    Reason("connection_error", ("download",),
           "the host refused or dropped the connection, or cannot be reached",
           "check the URL and the network; re-run with `--retry-failed`"),
    Reason("dns_error", ("download",),
           "the URL's host name does not resolve (the name does not exist)",
           "check the host name in the URL, and DNS on this machine"),
    Reason("dns_temporary", ("download",),
           "the resolver could not answer for the URL's host (a DNS timeout or an unreachable DNS server), "
           "after `--retries`",
           "check DNS on this machine; re-run with `--retry-failed`"),
    Reason("bad_url", ("download",),
           "the URL has no host",
           "fix the URL in the manifest"),
    Reason("refused_url", ("download",),
           "a `file://` URL, a local path, a scheme other than http/https, or a connection (the URL, a redirect, a "
           "segment, a subtitle) to an address that is not public (private, loopback, link-local, CGNAT)",
           "refused for safety (README: Security model); `--allow-hosts` for a trusted internal host, "
           "`--allow-local` for a local corpus"),
    Reason("local_file_not_found", ("download",),
           "a local path in the manifest (with `--allow-local`) does not exist",
           "fix the path in the manifest (relative paths are relative to the manifest)"),
    Reason("unsupported_url", ("download",),
           "yt-dlp finds no video on that page (an HTML page, a playlist)",
           "give the video's own URL (a playlist: one row per video), or `kind: image` for images"),
    # --- download: a site that refuses this machine or this video (README "Downloading from YouTube") -----
    Reason("bot_check", ("download",),
           "YouTube asks to sign in to confirm this is not a bot, or blocks this IP address (a datacenter IP, "
           "too many requests)",
           "retried with backoff, the worker pauses when most recent sources get it; pass `--cookies` of a "
           "logged-in browser, a `--proxy` on another network, slower `--sleep-requests`; then `--retry-failed`"),
    Reason("rate_limited", ("download",),
           "the site answered 429 Too Many Requests, or YouTube says this session is rate-limited (for up to "
           "an hour)",
           "retried with backoff, the worker pauses when most recent sources get it; lower `--concurrency` and "
           "`--workers`, add `--sleep-requests`/`--sleep-interval`, spread over `--proxy` addresses; then "
           "`--retry-failed`"),
    Reason("private_video", ("download",),
           "the video is private",
           "drop the row, or pass `--cookies` of an account it is shared with"),
    Reason("members_only", ("download",),
           "the video is for the channel's members (or for signed-in users) only",
           "drop the row, or pass `--cookies` of an account with access"),
    Reason("age_restricted", ("download",),
           "the video is age-restricted: YouTube asks to sign in to confirm the viewer's age",
           "pass `--cookies` of a signed-in, age-verified account, or drop the row"),
    Reason("geo_blocked", ("download",),
           "the video is not available in the country this machine (or its proxy) appears to be in",
           "use a `--proxy` in a country where it is available, or drop the row"),
    Reason("removed", ("download",),
           "the video was removed or is unavailable: deleted by the uploader, a copyright claim, a terminated "
           "account, a policy violation, or it never existed",
           "drop the row (it will not come back)"),
    Reason("live_or_upcoming", ("download",),
           "a live stream in progress, a premiere or live event that has not started, or one that has just "
           "ended and is still being processed",
           "re-run with `--retry-failed` once the stream is over (its recording is then a video)"),
    Reason("js_runtime_missing", ("download",),
           "yt-dlp found no JavaScript runtime to solve YouTube's challenges, so formats were missing "
           "(the detail quotes yt-dlp's warning)",
           "run `mmdata doctor`; `make setup` installs deno (PyPI `deno`), or name a runtime you have with "
           "`--js-runtimes`; then `--retry-failed`"),
    Reason("no_suitable_format", ("download",),
           "the site offers no format that fits the options (`--max-height`, `--container`, `--format`): "
           "yt-dlp's \"Requested format is not available\" or \"No video formats found\"",
           "relax those options, or drop the row"),
    Reason("no_format_under_cap", ("download",),
           "with `--strict-height`, the site offers no format at or under `--max-height`",
           "raise `--max-height`, drop `--strict-height`, or drop the row"),
    Reason("download_failed", ("download",),
           "yt-dlp failed for another reason, or wrote no media file (its message is in the detail)",
           "read the detail; a site change is often fixed by a newer yt-dlp (`make upgrade`)"),
    Reason("over_size_cap", ("download",),
           "the file is larger than `--max-filesize-mb`",
           "raise the cap, or `--sections` to fetch only the clips' span"),
    Reason("over_duration_cap", ("download",),
           "the media is longer than `--max-duration`",
           "raise the cap, or `--sections` to fetch only the clips' span"),
    Reason("not_media", ("download", "frames", "audio"),
           "the file is neither audio nor video: text, HTML, unknown bytes, or a container with no audio or "
           "video stream",
           "the URL does not point at media: fix or drop the row"),
    Reason("corrupt_media", ("download", "frames", "audio", "signatures"),
           "a media container that does not parse (a truncated download, a damaged file)",
           "re-download with `--retry-failed`; if it persists, the source itself is broken"),
    Reason("not_an_image", ("download", "frames"),
           "an image row whose file does not decode as an image",
           "fix the row's URL, or drop the row"),
    Reason("image_too_small", ("download",),
           "the image is under `download.min_image_side` pixels on a side",
           "drop the row, or lower `download.min_image_side`"),
    Reason("wrong_content_type", ("download",),
           "an image URL served as something else, e.g. text/html (an error or login page, an expired link)",
           "refresh the link, or drop the row"),
    # --- download --prefilter: dropped before any media byte (mmdata/fetch/prefilter.py) ---------------------
    Reason("prefilter_duration", ("download",),
           "the page's duration is outside `--prefilter-min-duration`..`--prefilter-max-duration` (the detail "
           "gives both, and the rule)",
           "a choice, not a failure: loosen the rule and re-run with `--retry-failed` to judge it again"),
    Reason("prefilter_category", ("download",),
           "none of the page's categories is in `--prefilter-categories`, or one is in `--prefilter-deny-categories`",
           "a choice: change the lists and re-run with `--retry-failed`"),
    Reason("prefilter_license", ("download",),
           "the page's licence is not in `--prefilter-licenses` (or it gives none)",
           "a choice: change the list and re-run with `--retry-failed`"),
    Reason("prefilter_no_captions", ("download",),
           "the page has no captions of the kinds `--prefilter-captions` counts in a `--languages` language",
           "a choice: other languages or `--prefilter-captions any` (or `none`), then `--retry-failed`"),
    Reason("prefilter_sparse_captions", ("download",),
           "its best caption track has fewer words per 30 s than `--prefilter-min-words-per-30s`",
           "a choice: lower the minimum and re-run with `--retry-failed`"),
    # --- every stage that runs ffmpeg or ffprobe --------------------------------------------------------
    Reason("<step>_timeout", ("download", "frames", "shots", "vad", "audio", "align", "quantize", "tokenizers"),
           "ffprobe or ffmpeg ran over its time allowance on the file (`--timeout`, plus a second per second of "
           "media it works through; step: probe, scan, decode, remux or audio) and was killed",
           "a huge or pathological file: raise the stage's `--timeout` (`timeout_s`) where it has one, or drop "
           "the row",
           parts=TOOL_STEPS),
    # --- reading what earlier stages left -----------------------------------------------------------------
    Reason("missing_<stage>", ("frames", "shots", "vad", "audio", "align", "filter", "signatures", "dedup",
                               "quantize", "shard"),
           "the clip (or its source) has no output of that earlier stage: it failed there, or that stage has "
           "not run on it yet",
           "see that stage's error row for the clip; run that stage (or `--retry-failed`) first",
           parts=UPSTREAM_STAGES),
    Reason("missing_output_file", ("frames", "shots", "vad", "audio", "align", "filter", "quantize", "shard",
                                  "tokenizers"),
           "a file an earlier stage recorded in its meta is no longer in the work store",
           "the work store was changed by hand or partly deleted: re-run that stage and the ones after it"),
    Reason("unreadable_output", ("frames", "shots", "vad", "audio", "align", "filter", "quantize", "shard",
                                 "tokenizers", "stats"),
           "an earlier stage's meta for the item does not read as that stage's record (edited by hand, or "
           "written by another mmdata version), or that stage's chunk table does not read at all (damaged: "
           "`mmdata stats` counts each item of such a table so, at the table's own stage, and names the table)",
           "re-run that stage with this mmdata version (a damaged chunk table: `mmdata run` or the stage's command "
           "redoes its chunk; a meta of another version: delete the stage's folder in the work store)"),
    Reason("corrupt_file", ("frames", "vad", "align", "filter", "quantize", "shard", "tokenizers"),
           "a file decodes only in part (frames stop early: under `--min-decoded-fraction` of the clip), or a "
           "stage's output file does not decode",
           "a truncated or damaged file: re-download it, or re-run the stage that wrote it"),
    Reason("missing_ffmpeg", ("quantize",),
           "the clip's audio is not the audio stage's mono FLAC/WAV at 16 kHz, so it needs ffmpeg to convert it, "
           "and the worker's machine has none (quantize asks for no media tools up front: GPU nodes may lack them)",
           "install ffmpeg on the GPU nodes and run quantize with `--retry-failed`, or have the audio stage write "
           "16 kHz (its default)"),
    Reason("bad_kind", ("frames", "shots", "vad", "audio"),
           "the download recorded a kind other than video, audio or image",
           "fix the manifest's `kind` and re-run download"),
    # --- frames and audio: the clip's window ------------------------------------------------------------
    Reason("bad_window", ("frames", "audio"),
           "the clip's window is empty or negative (end not after start), or starts before a section download",
           "fix the clip's `start`/`end` in the manifest"),
    Reason("unknown_duration", ("frames", "audio"),
           "the clip has no end and neither the header nor the packets give the media's duration",
           "give the clip an `end` in the manifest, or re-encode the file"),
    Reason("window_beyond_end", ("frames", "audio"),
           "the clip starts after the media's end, or (with `--window reject`) ends past it",
           "check the manifest's times against the media's duration; `--window clamp` cuts at the end"),
    Reason("window_too_short", ("frames", "audio"),
           "what is left of the window after clamping at the media's end is under the minimum clip length",
           "check the manifest's times against the media's duration"),
    # --- frames -------------------------------------------------------------------------------------------
    Reason("video_size_zero", ("frames",),
           "the video stream reports a 0x0 picture",
           "the file is broken; re-encode it if you need it"),
    Reason("unsupported_codec", ("frames",),
           "a video codec neither decord (FFmpeg 4.1) nor the system ffmpeg decodes (AV1 is read with the "
           "system ffmpeg when it has an AV1 decoder, e.g. libdav1d)",
           "install an ffmpeg with a decoder for it, download H.264/VP9 instead, or re-encode the file to H.264"),
    Reason("undecodable_video", ("frames", "shots"),
           "no video frame decodes at all",
           "the video stream is broken; re-encode it to H.264 if you need it"),
    Reason("remux_failed", ("frames",),
           "ffmpeg cannot copy the video stream into a container decord can index",
           "the stream is damaged or unusual; re-encode it"),
    Reason("no_frames_in_window", ("frames",),
           "no video frame starts inside the clip's window",
           "check the clip's times (a window shorter than one frame interval may hold none)"),
    # --- shots -------------------------------------------------------------------------------------------
    Reason("no_shots", ("shots",),
           "the shot detector got no frame: ffprobe lists video packets but none decodes",
           "the video stream is broken; re-encode it to H.264 if you need it (its clips are not segmented "
           "by `--segment shots`)"),
    # --- audio --------------------------------------------------------------------------------------------
    Reason("audio_decode_failed", ("audio",),
           "ffmpeg cannot decode the audio stream (less than half the clip decodes)",
           "the audio is damaged; a file with no audio track at all is not an error (speech is marked absent)"),
    Reason("no_audio_in_window", ("audio",),
           "the audio stream has no samples inside the clip's window",
           "check the clip's times against the audio's length"),
    Reason("audio_encode_failed", ("audio",),
           "the clip's FLAC cannot be written (libsndfile, in the worker)",
           "check free space in the scratch folder; the detail has libsndfile's message"),
    # --- align --------------------------------------------------------------------------------------------
    Reason("subtitle_fetch_failed", ("align",),
           "the manifest's `subtitles` file could not be fetched at download",
           "fix its URL/path and re-run download with `--retry-failed`"),
    Reason("unknown_subtitle_format", ("align",),
           "the subtitle file is none of json3, WebVTT, SRT, word alignment or word JSON",
           "convert it to one of those, or drop it"),
    Reason("wrong_encoding", ("align",),
           "the subtitle file is not text in the expected encoding (the detail names the byte)",
           "re-save it as UTF-8"),
    Reason("empty_file", ("align",),
           "the subtitle file is empty, or has no cues or words",
           "fix or drop the subtitle file; a video without subtitles is normal (language absent)"),
    Reason("unparsable_timestamp", ("align",),
           "a cue or word time in the subtitle file does not parse (the detail names the line)",
           "fix or drop the subtitle file"),
    Reason("unparsable_json", ("align",),
           "a JSON subtitle or word file does not parse, or lacks the expected fields",
           "fix or drop the subtitle file"),
    Reason("cue_end_before_start", ("align",),
           "a cue or word ends before it starts, or has a negative duration",
           "fix or drop the subtitle file"),
    Reason("non_monotone_times", ("align",),
           "the words' start times go backwards",
           "fix or drop the subtitle file"),
    Reason("times_beyond_media", ("align",),
           "the subtitle's times run past the end of the media (beyond the tolerance)",
           "the subtitle belongs to another cut of the video: fix or drop it"),
    # --- filter (README "Curating a corpus"): the detail has the clip's scores and the thresholds -----------
    Reason("too_short", ("filter",),
           "the clip is shorter than `min_duration_s`",
           "intended: the clip is left out of the corpus; lower `--min-duration` to keep such clips"),
    Reason("too_long", ("filter",),
           "the clip is longer than `max_duration_s`",
           "intended; raise `--max-duration`, or cut long sources into clips (`mmdata align --segment`)"),
    Reason("low_resolution", ("filter",),
           "the source picture's short side (as shown) is under `min_side` pixels",
           "intended; lower `--min-side`, or download a larger format (`download.max_height`)"),
    Reason("bad_aspect", ("filter",),
           "the picture's width/height (as shown) is outside `min_aspect`..`max_aspect`",
           "intended; widen the range (e.g. keep portrait video with `--min-aspect 0.5`)"),
    Reason("black_frames", ("filter",),
           "more than `max_black_fraction` of the sampled frames are blank: near-black or one flat colour",
           "intended; raise `--max-black-fraction`, or `--black-range` lower so only flatter frames count"),
    Reason("static_video", ("filter",),
           "the sampled frames barely change (median frame difference under `min_motion`): a still, a slideshow",
           "intended; lower `--min-motion` (read the motion histogram in `mmdata stats --work`)"),
    Reason("low_speech", ("filter",),
           "Silero VAD finds speech in less than `min_speech_ratio` of the clip's audio: silence, music, noise",
           "intended; lower `--min-speech-ratio` (read the speech_ratio histogram in `mmdata stats --work`)"),
    Reason("few_words", ("filter",),
           "the transcript has fewer than `min_words_per_second` words per second of speech (Silero VAD's speech "
           "seconds, else the clip's length; the detail says which)",
           "intended; lower `--min-words-per-second`, or check the subtitles belong to this video"),
    Reason("wrong_language", ("filter",),
           "the transcript's detected language (py3langid) is not in `language` (and the detection is at least "
           "`min_language_confidence` sure)",
           "intended; add the language to `--language`, or raise `--min-language-confidence`"),
    # --- quantize -----------------------------------------------------------------------------------------
    Reason("no_modality", ("quantize", "train", "eval"),
           "the clip (or sample) has nothing to tokenise: no frames, no speech and no text",
           "nothing to fix for such a clip: it cannot be a sample"),
    # --- shard --------------------------------------------------------------------------------------------
    Reason("corrupt_tokens", ("shard", "train", "eval"),
           "a token array is not a readable `.npy` (quantize's output, or a shard's field)",
           "re-run quantize for the clip (shard), or rebuild the shard (train)"),
    Reason("tokenizer_mismatch", ("shard",),
           "the clip's tokens were made with another tokenizer set than the one sharded with",
           "re-run quantize with the set you shard with, or pass the matching `--tokenizers` folder"),
    Reason("invalid_sample", ("shard",),
           "the sample fails the shard schema (the detail lists each problem)",
           "a damaged output or a bug: read the detail, and please report a bug"),
    # --- train and eval: samples read from shards ---------------------------------------------------------
    Reason("corrupt_json", ("train", "eval"),
           "a sample's `json` field does not parse",
           "the shard is damaged: rebuild it with `mmdata shard`"),
    Reason("missing_field", ("train", "eval"),
           "a sample's metadata lists a modality whose token field is absent",
           "the shard is damaged: rebuild it with `mmdata shard`"),
    Reason("unknown_modality", ("train", "eval"),
           "a sample's metadata names a modality other than vision, speech and language",
           "shards from another tool or version: rebuild them with `mmdata shard`"),
    Reason("bad_token_dtype", ("train", "eval"),
           "a token array does not hold integers",
           "shards from another tool or version: rebuild them with `mmdata shard`"),
    Reason("bad_token_shape", ("train", "eval"),
           "a token array has the wrong shape (vision: not `[T, h, w]` within `model.grid`; others: not 1-D)",
           "shard with the tokenizers the model is configured for"),
    Reason("token_out_of_range", ("train", "eval"),
           "a token id is outside the model's vocabulary",
           "usually shards made with another tokenizer: shard with the ones the model is configured for"),
    Reason("unreadable_shard_data", ("eval",),
           "a held-out shard, or a member of it, cannot be read (a truncated tar)",
           "rebuild or copy the shard again; `mmdata verify` finds it"),
    # --- dedup ---------------------------------------------------------------------------------------------
    Reason("duplicate_of:<key>", ("dedup",),
           "the clip is a copy of the clip `<key>`, kept before it in manifest order: the same packets and window "
           "(exact, a re-muxed copy), or sampled frames within `max_distance` bits of its (near: a re-encode, a "
           "small crop); the detail says which, and the distance",
           "nothing to do: one copy is kept. Fewer copies found: lower `--max-distance`; more: raise it (README "
           "\"De-duplication\")",
           parts=r".+"),
    # --- any stage: made by the runner --------------------------------------------------------------------
    Reason("worker_crashed", ("any",),
           "the worker process (local or Ray) died twice while on this item, the second time running it alone "
           "(a native decoder crashing on a file; one death is not blamed: workers are also killed from outside); "
           "the rest of its chunk ran again",
           "inspect the file; `--retry-failed` tries it once more (with `--workers 1` a crash stops the run)"),
    Reason("chunk_failed", ("any",),
           "the item's chunk failed outside any item (the stage's setup on a worker, reading the chunk, writing "
           "its table, a worker that died between items, a Ray task error); the run went on with other chunks",
           "the detail (and the log) says what failed; fix it, then `--retry-failed`"),
    Reason("internal_error", ("any",),
           "a bug in mmdata (the traceback is in the log)",
           "please report it with the detail"),
)

# Names earlier versions wrote for a meaning that now has one name: older work stores and shard records
# still hold them, so describe() resolves them too. Code must not raise them (tests/test_reasons.py).
RENAMED: dict[str, str] = {
    "unavailable": "removed",  # private videos have their own name now: private_video
    "file_not_found": "local_file_not_found",
    "missing_file": "missing_output_file",
    "missing_tokens": "missing_output_file",
    "not_downloaded": "missing_download",
    "not_quantized": "missing_quantize",
    "unreadable_media": "corrupt_media",
    "no_media_streams": "not_media",
    "corrupt_image": "not_an_image",
    "decoder_error": "undecodable_video",
    "corrupt_npy": "corrupt_tokens",
    "no_modalities": "no_modality",
    "bad_vision_shape": "bad_token_shape",
}

_BY_NAME = {r.name: r for r in REASONS}
STAGE_NAMES = {s for r in REASONS for s in r.stages} | set(UPSTREAM_STAGES.split("|"))


def describe(reason: str) -> Reason | None:
    """The entry of `reason`: an exact name, a family member (`http_404`), a shard's `<stage>:<reason>`
    key, or an old name (RENAMED); None for a reason mmdata does not write."""
    while (head := reason.partition(":"))[1] and head[0] in STAGE_NAMES:
        reason = head[2]  # a shard's `<stage>:<reason>` key
    reason = RENAMED.get(reason, reason)
    if reason in _BY_NAME:
        return _BY_NAME[reason]
    return next((r for r in REASONS if r.is_family and r.matches(reason)), None)


def counted(reason: str) -> str:
    """The name a reason is counted under in summaries, the funnel and shard records: a family whose part is a
    clip's key (`duplicate_of:<key>`) counts as one, not as one reason per key."""
    return reason.partition(":")[0] if reason.startswith("duplicate_of:") else reason


def markdown() -> str:
    """The README table "What each error reason means", one row per reason."""
    lines = ["| stage | reason | meaning | what to do |", "|---|---|---|---|"]
    for r in REASONS:
        lines.append(f"| {', '.join(r.stages)} | `{r.name}` | {r.meaning} | {r.action} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv != ["--markdown"]:
        print("usage: python -m mmdata.reasons --markdown   (prints the README table of error reasons)",
              file=sys.stderr)
        return 2
    sys.stdout.write(markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
