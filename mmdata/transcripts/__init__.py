"""Transcripts: subtitle parsers (YouTube json3 and auto-caption WebVTT, manual WebVTT and SRT, GRID
`.align`, JSON word lists), text normalisation, validation, clip assignment, segmentation, and word
times from audio for text without them or with cue times only (forced alignment with a local CTC
checkpoint; else words placed in the speech a voice activity detector finds).

    from mmdata.transcripts import parse_file
    tr = parse_file("subs.en.auto.vtt", origin="auto")   # Transcript: words once each, times in seconds
"""
from mmdata.transcripts.formats import PARSERS, parse_file
from mmdata.transcripts.model import Segment, Transcript

__all__ = ["PARSERS", "Segment", "Transcript", "parse_file"]
