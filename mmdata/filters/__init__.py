"""Curation: which clips go into the corpus.

- `measures.py`: a clip's scores (duration, picture size and aspect, motion and blank frames from the frames
  stage's JPEGs, speech share, the transcript's words per second and language), read from what earlier
  stages stored; no second decode of the source.
- `language.py`: the transcript's language (py3langid; its model ships inside the wheel).
- `rules.py`: the filters, one small class each, named by the reason a rejected clip's error row carries
  (`too_short`, `low_resolution`, `static_video`, ...), built from one `FilterConfig`.
- `funnel.py`: how many clips and hours each stage and filter removed, in order, with score histograms
  (`mmdata stats --work`, the end of `mmdata run`).

The stage that runs them is mmdata/pipelines/filters.py.
"""
