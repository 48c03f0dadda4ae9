"""The prepared accelerator check (benchmarks/device_check.sh) runs end to end at its tiny sizes on CPU."""

import importlib.util
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_device_check_prints_every_figure_at_tiny_sizes(capsys):
  spec = importlib.util.spec_from_file_location("device_check", ROOT / "benchmarks" / "device_check.py")
  device_check = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(device_check)
  device_check.main(["--tiny"])
  out = capsys.readouterr().out
  for pattern in (
    r"train step \(convnet.*HAPPIER loss\): [\d.]+ ms, \d+ images/s",
    r"share of the step outside the backbone .*: [\d.]+%",
    r"input pipeline, \d+ worker processes .*: \d+ images/s",
    r"host cores to feed the step: [\d.]+",
    r"exact evaluation, 1500 x 512, full metric set: [\d.]+ s; bare matmul [\d.]+ s \(ratio [\d.]+\); "
    r"device-to-host \d+ bytes per query",
  ):
    assert re.search(pattern, out), f"{pattern!r} not in:\n{out}"
  script = (ROOT / "benchmarks" / "device_check.sh").read_text()
  assert "benchmarks/device_check.py" in script and "timeout" in script
