"""The loop end to end on CPU: outputs, resume, DDP equivalence, the CLI, and learning on synthetic data.

The learning test uses synthetic token shards (mmdata.testing.synthetic), not pipeline output."""
import json

import pytest
import torch
from click.testing import CliRunner

from mmdata.commands.train import eval_cmd, train_cmd
from mmdata.testing.synthetic import COLORS, SHAPES
from mmdata.train.checkpoint import latest_checkpoint, load_checkpoint
from mmdata.train.config import TrainConfig
from mmdata.train.evaluate import DIRECTIONS, direction_name, evaluate
from mmdata.train.launch import run
from mmdata.train.loop import train


def _losses(run_dir):
    return [json.loads(line)["loss"] for line in open(f"{run_dir}/log.jsonl")]


def _params(run_dir):
    return load_checkpoint(run_dir)["model"]


def _close(a, b, atol):
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < atol, worst


def test_run_writes_checkpoints_logs_and_summary(tiny, tmp_path):
    summary = train(tiny(steps=5, ckpt_every=2, keep_ckpts=2))
    out = tmp_path / "run"
    assert summary["steps"] == 5 and summary["samples_per_s"] > 0 and summary["tokens_per_s"] > 0
    assert json.loads((out / "summary.json").read_text())["final_loss"] == pytest.approx(summary["final_loss"])
    records = [json.loads(line) for line in open(out / "log.jsonl")]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5]
    assert {"mlm", "mvm", "msm", "con_vl", "con_vs", "con_ls", "loss", "lr", "samples_per_s", "tokens_per_s"} <= set(records[0])
    assert list((out / "tb").glob("events.out.tfevents.*"))
    assert sorted(p.name for p in (out / "checkpoints").glob("step_*.pt")) == ["step_0000004.pt", "step_0000005.pt"]
    ckpt = torch.load(latest_checkpoint(out), map_location="cpu", weights_only=True)  # tensors and plain types only
    assert ckpt["step"] == 5 and len(ckpt["data"]["position"]) == ckpt["data"]["streams"] == 1
    assert TrainConfig.from_dict(ckpt["config"]).model.vocab_text == 21
    assert set(ckpt) >= {"model", "optimizer", "scheduler"} and ckpt["scheduler"]["last_epoch"] == 5


@pytest.mark.parametrize("fusion", ["merge", "coattn"])
def test_resume_continues_the_same_loss_curve(tiny, tmp_path, fusion):
    n = 4
    full = tiny(steps=2 * n, out=str(tmp_path / "full"), streams=2, model={"fusion": fusion})
    train(full)
    part = tiny(steps=2 * n, stop_after=n, out=str(tmp_path / "part"), streams=2, model={"fusion": fusion})
    assert train(part)["steps"] == n
    with open(tmp_path / "part" / "log.jsonl", "a") as f:  # as if it crashed after logging past the checkpoint
        f.write(json.dumps({"step": n + 1, "loss": 123.0}) + "\n")
    resumed = tiny(steps=2 * n, out=str(tmp_path / "part"), streams=2, model={"fusion": fusion})
    assert train(resumed, resume=True)["steps_this_run"] == n
    assert _losses(tmp_path / "part") == pytest.approx(_losses(tmp_path / "full"), rel=1e-5)
    _close(_params(tmp_path / "part"), _params(tmp_path / "full"), atol=1e-5)


@pytest.mark.slow
def test_ddp_two_processes_match_one_process(tiny, tmp_path):
    """Same global batch (streams fixed): 2 gloo ranks, each with a DataLoader worker process, give the loss
    curve and parameters of 1 process loading in-process (both with 2 accumulation micro-steps)."""
    one = run(tiny(steps=4, out=str(tmp_path / "one"), streams=4, batch_size=16, accum_steps=2))
    two = run(tiny(steps=4, out=str(tmp_path / "two"), streams=4, batch_size=16, accum_steps=2, nproc=2, workers=1))
    assert one["world_size"] == 1 and two["world_size"] == 2
    assert _losses(tmp_path / "two") == pytest.approx(_losses(tmp_path / "one"), rel=1e-4)
    _close(_params(tmp_path / "two"), _params(tmp_path / "one"), atol=1e-4)


def test_cli_train_then_eval(corpus, heldout, tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(train_cmd, ["--data", corpus, "--preset", "tiny", "--out", str(out), "--steps", "3",
                                         "--batch-size", "8", "--fusion", "coattn"])
    assert res.exit_code == 0, res.output
    assert "trained 3 steps" in res.output and "step_0000003.pt" in res.output
    report_path = tmp_path / "eval.json"
    res = CliRunner().invoke(eval_cmd, ["--checkpoint", str(out), "--data", heldout, "--json", str(report_path)])
    assert res.exit_code == 0, res.output
    report = json.loads(report_path.read_text())
    assert report["samples"] == 64 and report["step"] == 3
    assert set(report["retrieval"]) == {"v->l", "l->v", "v->s", "s->v", "l->s", "s->l"}
    assert all(r["n"] == 64 and 0 <= r["R@1"] <= r["R@5"] <= 1 for r in report["retrieval"].values())
    assert "v->l" in res.output


def test_cli_usage_errors_exit_2(corpus, tmp_path):
    runner = CliRunner()
    res = runner.invoke(train_cmd, ["--data", corpus, "--out", str(tmp_path / "r"), "--weights", "1,2"])
    assert res.exit_code == 2 and "2 weights for 1 --data" in res.output
    res = runner.invoke(train_cmd, ["--data", str(tmp_path / "none-{0..1}.tar"), "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "missing file" in res.output
    res = runner.invoke(train_cmd, ["--data", corpus, "--out", str(tmp_path / "r"), "--resume", "--preset", "tiny"])
    assert res.exit_code == 2 and "no checkpoint found" in res.output
    args = ["--data", corpus, "--out", str(tmp_path / "r"), "--preset", "tiny", "--steps", "1", "--batch-size", "4"]
    assert runner.invoke(train_cmd, args).exit_code == 0
    res = runner.invoke(train_cmd, args)  # the same run folder again, without --resume
    assert res.exit_code == 2 and "already holds checkpoints" in res.output


@pytest.mark.slow
def test_learning_retrieval_far_above_chance(tiny, heldout, tmp_path):
    """150 CPU steps of the tiny model on synthetic clips whose vision, speech and text share a
    (colour, shape): held-out retrieval R@1 is far above chance (1/64) and above the untrained model."""
    cfg = tiny(steps=150, batch_size=32, streams=2, log_every=50, out=str(tmp_path / "learn"))
    train(cfg)
    trained = evaluate(tmp_path / "learn", [heldout])["retrieval"]

    untrained = evaluate(tmp_path / "learn", [heldout], untrained=True)["retrieval"]
    chance = 1 / (len(COLORS) * len(SHAPES))
    for a, b in DIRECTIONS:
        name = direction_name(a, b)
        assert trained[name]["R@1"] >= max(0.5, 10 * chance), (name, trained[name])
        assert trained[name]["R@1"] >= untrained[name]["R@1"] + 0.2, (name, trained[name], untrained[name])


def test_eval_refuses_shards_of_other_tokenizers(tiny, heldout, tmp_path):
    import shutil

    train(tiny(steps=1))
    other = tmp_path / "other"
    shutil.copytree(heldout.split("/held-")[0], other)
    index = json.loads((other / "index.json").read_text())
    index["tokenizers"]["text"]["hash"] = "another-text-tokenizer"
    (other / "index.json").write_text(json.dumps(index))
    res = CliRunner().invoke(eval_cmd, ["--checkpoint", str(tmp_path / "run"), "--data", str(other / "held-000000.tar")])
    assert res.exit_code == 2 and "different language tokenizer" in res.output
