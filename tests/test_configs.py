"""Config files: presets, defaults, and the loss-combination validation."""

import pytest

from suprank_jax.configs import common


def test_parse_arg_types_values_by_their_default():
  args = common.parse_arg("smoke,steps=5,lr=0.5", smoke=False, steps=1, lr=1.0)
  assert args.smoke is True and args.steps == 5 and args.lr == 0.5


@pytest.mark.parametrize("arg,match", [("nope", "unknown config argument"), ("steps=x", "expected int"),
                                       ("steps", "needs a value"), ("smoke=maybe", "not a bool")])
def test_parse_arg_rejects_bad_presets(arg, match):
  with pytest.raises(ValueError, match=match):
    common.parse_arg(arg, smoke=False, steps=1)
