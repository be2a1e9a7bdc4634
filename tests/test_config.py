"""mmdata.config: the one way every command builds its typed config."""
from dataclasses import dataclass

import pytest

from mmdata.config import build_config, check, load_yaml_section
from mmdata.errors import ConfigError


@dataclass
class Demo:
    timeout_s: float = 30.0
    subtitles: bool = True
    languages: tuple[str, ...] = ("en",)
    max_height: int = 480
    label: str | None = None

    def __post_init__(self):
        check(self.max_height >= 32, "Demo", "max_height", self.max_height, "at least 32 pixels")


def test_priority_defaults_preset_file_cli():
    cfg = build_config(Demo, cli={"max_height": None, "label": "cli"}, section={"max-height": 360, "label": "file"},
                       preset={"max_height": 240, "timeout_s": 5})
    assert cfg == Demo(timeout_s=5.0, max_height=360, label="cli")  # None on the CLI means "not given"


def test_yaml_accepts_the_command_line_spelling():
    cfg = build_config(Demo, section={"timeout": 12, "no-subtitles": True, "languages": "en,de"})
    assert (cfg.timeout_s, cfg.subtitles, cfg.languages) == (12.0, False, ("en", "de"))


@pytest.mark.parametrize("section,message", [
    ({"max_heigth": 3}, "unknown Demo option 'max_heigth' in config file; allowed: label, languages, max_height"),
    ({"max_height": "tall"}, "Demo.max_height: expected int, got 'tall'"),
    ({"max_height": 8}, "Demo.max_height = 8 is invalid: at least 32 pixels"),
    ({"subtitles": "maybe"}, "Demo.subtitles: expected bool, got 'maybe'"),
    ({"timeout_s": None}, "Demo.timeout_s: a value is required, got null"),
])
def test_wrong_values_name_the_key_the_value_and_what_is_allowed(section, message):
    with pytest.raises(ConfigError) as e:
        build_config(Demo, section=section)
    assert message in str(e.value)


def test_yaml_sections(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("download: {timeout: 5}\nframes: [1, 2]\n")
    assert load_yaml_section(p, "download") == {"timeout": 5} and load_yaml_section(p, "audio") == {}
    with pytest.raises(ConfigError, match="section 'frames' must be a mapping"):
        load_yaml_section(p, "frames")
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml_section(tmp_path / "missing.yaml", "download")
    (tmp_path / "bad.yaml").write_text("download: {timeout: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml_section(tmp_path / "bad.yaml", "download")
