"""Transcripts: subtitle parsers (YouTube json3 and auto-caption WebVTT, manual WebVTT and SRT, GRID
`.align`, JSON word lists), text normalisation, validation, clip assignment, segmentation, and the two
aligners for text without timing (forced alignment with a local CTC checkpoint; an energy fallback).

    from mmdata.transcripts import parse_file
    tr = parse_file("subs.en.auto.vtt", origin="auto")   # Transcript: words once each, times in seconds
"""
from mmdata.transcripts.formats import PARSERS, parse_file
from mmdata.transcripts.model import Segment, Transcript

__all__ = ["PARSERS", "Segment", "Transcript", "parse_file"]
