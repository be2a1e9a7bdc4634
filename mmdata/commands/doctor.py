"""`mmdata doctor`: what mmdata needs from this machine, each problem in a sentence with its fix."""
from __future__ import annotations

import sys

import click


@click.command("doctor", help="Check this machine for what mmdata needs: Python, the locked packages, ffmpeg/ffprobe "
                              "(and its AV1, VP9, HEVC decoders), espeak-ng, torch/torchaudio/torchvision loading "
                              "together, decord reading a generated video, yt-dlp's age, Ray (local, or the cluster "
                              "at --ray-address) and CUDA. Exits 1 when something a stage needs is broken.\n\n"
                              "Example:\n\n  mmdata doctor\n\n  mmdata doctor --ray-address 10.0.0.1:6379 --json")
@click.option("--ray-address", default=None, help="Check this running cluster instead of starting a local Ray.")
@click.option("--skip", "skip", multiple=True, metavar="CHECK",
              help="Leave a check out (python, packages, ffmpeg, espeak-ng, torch, decord, yt-dlp, ray); repeatable.")
@click.option("--json", "as_json", is_flag=True, default=False, help="Print the checks as JSON.")
def doctor_cmd(ray_address, skip, as_json):
    from mmdata import doctor

    try:
        checks = doctor.run_checks(ray_address, tuple(skip), progress=not as_json)
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    click.echo(doctor.as_json(checks) if as_json else doctor.render(checks))
    sys.exit(doctor.exit_code(checks))
