"""Media handling for the frames and audio stages (the stage classes are in mmdata/pipelines/; ffmpeg and
ffprobe run through mmdata/tools.py).

    config.py         FramesConfig, AudioConfig, PRESETS (icode, avbert), build_media_config
    probe.py          ffprobe -> Probe (streams, rotation, duration from header or packets)
    source.py         a clip's downloaded file; probe cache shared by clips, stages and workers (seeded by
                      the download stage's own ffprobe of the file)
    window.py         the clip window on the container timeline, clamped or rejected (both stages)
    sampling.py       output geometry, which frames to pick (pure functions)
    decord_video.py   decord reader: frame times, decode by index with in-decoder scaling; NUT remux
    ffmpeg_frames.py  deterministic path for damaged video (ffprobe decodable count, ffmpeg extraction)
    frames.py         one clip's frames: vet, open, pick, decode, JPEG; still images via PIL
    audio.py          one clip's audio: ffmpeg -> FLAC + samples, silence, log-mel (torchaudio)
"""
