"""`mmdata run` over a work folder whose tokenizers were fitted with other options (README "Resume rules"):
refused before any work, naming the option; `--force` fits them again, and quantize and shard redo what was
made with the old ones; the same options keep them."""
from __future__ import annotations

import json

import yaml
from click.testing import CliRunner

from mmdata.commands.run import run_cmd
from mmdata.testing.media import make_video
from mmdata.workdir import WorkDir


def invoke(*args):
    return CliRunner().invoke(run_cmd, [*map(str, args), "--no-progress", "--workers", "1"], catch_exceptions=False)


def _pipeline(tmp_path, **tokenizers):
    (tmp_path / "media").mkdir(exist_ok=True)
    rows = ""
    for i in range(2):
        make_video(tmp_path / "media" / f"v{i}.mp4", duration_s=1.0, size=(96, 64), tone_hz=300 + 200 * i)
        rows += f"v{i},{tmp_path / 'media' / f'v{i}.mp4'},0,1,a red ball number {i}\n"
    (tmp_path / "m.csv").write_text("video_id,url,start_s,end_s,caption\n" + rows)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(_spec("m.csv", **tokenizers)))
    return tmp_path / "p.yaml"


def _spec(manifest: str, **tokenizers) -> dict:
    return {"manifest": manifest, "work": "work", "out": "out", "chunk_size": 1,
            "download": {"allow_local": True}, "frames": {"frames": 2, "size": 64},
            "tokenizers": {"fit_chunks": 2, "text": {"vocab_size": 270, "min_frequency": 1},
                           "speech": {"k": 4, "iters": 3}, "vision": {"k": 4, "iters": 3, "pca_dim": 4,
                                                                       "max_patches": 400}, **tokenizers},
            "quantize": {"device": "cpu"}, "shard": {"prefix": "t"}}


def _config(tmp_path, kind):
    return json.loads((tmp_path / "work" / "tokenizers" / kind / "config.json").read_text())


def test_run_refuses_other_fit_options_and_force_refits_and_requantizes(tmp_path):
    p = _pipeline(tmp_path)
    r = invoke(p)
    assert r.exit_code == 0, r.output
    speech, text = _config(tmp_path, "speech"), _config(tmp_path, "text")
    assert speech["fit_options"]["k"] == 4 and speech["fit_options"]["fit_chunks"] == 2
    shards = {f.name: f.read_bytes() for f in (tmp_path / "out").glob("*.tar")}

    spec = yaml.safe_load(p.read_text())
    spec["tokenizers"]["speech"]["k"] = 6
    spec["tokenizers"]["fit_chunks"] = 1
    p.write_text(yaml.safe_dump(spec))
    r = invoke(p)
    assert r.exit_code == 2, r.output
    where = tmp_path / "work" / "tokenizers"
    for kind, changed in (("speech", "fit_chunks 2 -> 1, k 4 -> 6"), ("text", "fit_chunks 2 -> 1"),
                          ("vision", "fit_chunks 2 -> 1")):
        assert f"tokenizers: the {kind} tokenizer in {where} was fitted with other options: {changed}." in r.output
    assert _config(tmp_path, "speech") == speech  # nothing changed
    assert {f.name: f.read_bytes() for f in (tmp_path / "out").glob("*.tar")} == shards

    r = invoke(p, "--force")
    assert r.exit_code == 0, r.output
    assert "tokenizers: speech is fitted again (--force): fit_chunks 2 -> 1, k 4 -> 6" in r.output
    # the run's own tokenizers are an input of quantize: made again, what was made with the old ones is redone
    assert "quantize: 2 items" in r.output and "redone: 2 whose inputs were made again chunk(s)" in r.output
    new = _config(tmp_path, "speech")
    assert new["vocab_size"] == 6 and new["fit_options"]["fit_chunks"] == 1 and new["hash"] != speech["hash"]
    assert _config(tmp_path, "text")["hash"] != text["hash"]  # fitted on one chunk's captions now
    work = WorkDir(tmp_path / "work")
    for chunk in (0, 1):  # quantize's stamps name the new tokenizers
        assert work.read_table("quantize", chunk).stamp["options"]["tokenizers"]["speech"] == new["hash"]
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["tokenizers"]["speech"]["hash"] == new["hash"]
    assert {f.name: f.read_bytes() for f in (tmp_path / "out").glob("*.tar")} != shards  # sharded again

    r = invoke(p)  # the YAML's options now: nothing to redo
    assert r.exit_code == 0, r.output
    assert "quantize: 2 items — ok 2, failed 0" in r.output and "0 items in 0 chunks (2 chunks already done)" in r.output


def test_a_set_named_by_dir_is_used_as_it_is(tmp_path):
    p = _pipeline(tmp_path)
    assert invoke(p).exit_code == 0
    spec = yaml.safe_load(p.read_text())
    spec["tokenizers"]["dir"] = "work/tokenizers"
    spec["tokenizers"]["speech"]["k"] = 6
    p.write_text(yaml.safe_dump(spec))
    r = invoke(p)
    assert r.exit_code == 0, r.output
    assert _config(tmp_path, "speech")["vocab_size"] == 4


def test_a_sample_item_recovered_by_retry_failed_refits_and_gives_the_corpus_of_a_run_without_the_failure(tmp_path):
    """A source of the fit sample missing in the first run (the fit goes on without it), back for
    `--retry-failed`: the run fits the tokenizers its clip feeds again (the sample is an input), quantize and
    shard redo what the old ones made, and the shards are those of a run that never missed it."""
    media = tmp_path / "media"
    media.mkdir()
    rows = ""
    for i in range(4):
        make_video(media / f"v{i}.mp4", duration_s=1.0, size=(96, 64), tone_hz=300 + 200 * i)
        rows += f"v{i},{media / f'v{i}.mp4'},0,1,a red ball number {i}\n"
    (tmp_path / "m.csv").write_text("video_id,url,start_s,end_s,caption\n" + rows)
    for name in ("ref", "cut"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "p.yaml").write_text(yaml.safe_dump(_spec(str(tmp_path / "m.csv"))))
    assert invoke(tmp_path / "ref" / "p.yaml").exit_code == 0

    (media / "v1.mp4").rename(tmp_path / "v1.mp4")  # a source of chunk 1, in the sample, is gone for a while
    r = invoke(tmp_path / "cut" / "p.yaml")
    assert r.exit_code == 3 and "local_file_not_found" in r.output, r.output
    before = {kind: _config(tmp_path / "cut", kind) for kind in ("speech", "vision", "text")}
    assert before["speech"]["fit"]["n_clips"] == 1  # fitted without it: chunk 0's clip alone has audio

    (tmp_path / "v1.mp4").rename(media / "v1.mp4")
    r = invoke(tmp_path / "cut" / "p.yaml", "--retry-failed")
    assert r.exit_code == 0, r.output
    assert "speech (vocab 4, again: its sample's inputs changed since it was fitted)" in r.output, r.output
    assert "vision (vocab 4, again: its sample's inputs changed since it was fitted)" in r.output, r.output
    assert _config(tmp_path / "cut", "text")["hash"] == before["text"]["hash"]  # a caption needs no download
    assert "quantize: 4 items" in r.output and "redone: 4 whose inputs were made again chunk(s)" in r.output
    cut, ref = (sorted((tmp_path / n / "out").glob("*.tar")) for n in ("cut", "ref"))
    assert [p.name for p in cut] == [p.name for p in ref] and len(cut) == 4
    assert [p.read_bytes() for p in cut] == [p.read_bytes() for p in ref]

    r = invoke(tmp_path / "cut" / "p.yaml")  # nothing changed since: nothing fitted or redone
    assert r.exit_code == 0 and "fitted none" in r.output and "(4 chunks already done)" in r.output, r.output
