from pathlib import Path

import pytest

from mmdata.config import build_config
from mmdata.errors import ConfigError
from mmdata.pipelines.pipeline import STAGES, PipelineConfig

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("name", ["icode.yaml", "avbert.yaml", "demo.yaml", "dual.yaml"])
def test_example_pipelines_build_every_stage_config(name):
    from mmdata.media.config import build_media_config
    from mmdata.pipelines.align import AlignConfig
    from mmdata.pipelines.download import DownloadConfig
    from mmdata.shards.build import ShardConfig

    cfg = PipelineConfig.from_yaml(EXAMPLES / name)
    assert cfg.manifest.parent == EXAMPLES and set(cfg.stages) <= set(STAGES)
    build_config(DownloadConfig, {}, cfg.sections["download"])
    frames = build_media_config("frames", cfg.sections["frames"], {}, cfg.preset)
    audio = build_media_config("audio", cfg.sections["audio"], {}, cfg.preset)
    build_config(AlignConfig, {}, cfg.sections["align"])
    build_config(ShardConfig, {}, cfg.sections["shard"])
    if name == "avbert.yaml":
        assert (frames.fps, frames.size, audio.sample_rate, audio.mel_bins) == (16.0, 128, 44100, 128)
    if name == "icode.yaml":
        assert (frames.frames, frames.size, audio.sample_rate) == (8, 224, 16000)


def test_pipeline_yaml_errors_name_the_key(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("manifest: m.csv\nwork: w\nout: o\nshards: {}\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['shards'\]"):
        PipelineConfig.from_yaml(p)
    p.write_text("work: w\nout: o\n")
    with pytest.raises(ConfigError, match="'manifest' is required"):
        PipelineConfig.from_yaml(p)
    p.write_text("manifest: m.csv\nwork: w\nout: o\nstages: [download, transcode]\n")
    with pytest.raises(ConfigError, match="stages"):
        PipelineConfig.from_yaml(p)
    p.write_text("manifest: m.csv\nwork: w\nout: o\nrunner: {executor: slurm}\n")
    with pytest.raises(ConfigError, match="executor"):
        PipelineConfig.from_yaml(p)
