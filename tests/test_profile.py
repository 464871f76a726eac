"""FLOP (multiply-add) and parameter counting against the paper's Table 1 and PAPER.md."""

import keras
import pytest

import keras_resnet
from conftest import run_cli
from keras_resnet.profile import PAPER_MACS, block_comparison, profile


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_imagenet_flops_within_three_percent_of_paper(depth):
    p = profile(keras_resnet.imagenet_resnet(depth))
    assert abs(p.macs / PAPER_MACS[f"resnet{depth}"] - 1) < 0.03, p.gflops


def test_cifar_resnet56_flops():
    p = profile(keras_resnet.ResNet56())
    assert p.macs == pytest.approx(125.5e6, rel=0.005)
    assert p.trainable_params == 853_018
    assert p.non_trainable_params > 0


def test_counts_by_hand_for_resnet8():
    """ResNet-8 (n=1) by the paper's formula: H*W*K*K*Cin*Cout per conv, Cin*Cout for the classifier."""
    convs = [
        (32, 3, 3, 16),  # stem
        (32, 3, 16, 16), (32, 3, 16, 16),  # stage 1
        (16, 3, 16, 32), (16, 3, 32, 32),  # stage 2
        (8, 3, 32, 64), (8, 3, 64, 64),  # stage 3
    ]
    conv_macs = sum(size * size * k * k * cin * cout for size, k, cin, cout in convs)
    p = profile(keras_resnet.cifar_resnet(8))
    assert p.conv_macs == conv_macs
    assert p.dense_macs == 64 * 10
    assert p.macs == conv_macs + 640


def test_option_a_shortcut_adds_no_flops_and_plain_equals_residual():
    a, plain = profile(keras_resnet.ResNet20()), profile(keras_resnet.PlainNet20())
    assert a.macs == plain.macs
    b = profile(keras_resnet.ResNet20(shortcut="B"))
    assert b.macs - a.macs == 16 * 16 * 16 * 32 + 8 * 8 * 32 * 64


def test_profile_needs_fixed_size():
    with pytest.raises(ValueError, match="fixed height and width"):
        profile(keras_resnet.ResNet18(input_shape=(None, None, 3)))


def test_bottleneck_costs_about_a_basic_block():
    (_, basic), (_, bottleneck) = block_comparison()
    assert basic.trainable_params - 4 * 64 == 2 * 3 * 3 * 64 * 64
    assert bottleneck.macs < basic.macs
    assert bottleneck.macs / basic.macs > 0.9


def test_profile_cli_prints_table():
    result = run_cli(["--models", "resnet20,plain20,resnet18"], module="keras_resnet.profile")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "| resnet20 | 32x32x3 | 269,722 | 0.3M | 40.6M | 40.6M |" in out
    assert "| resnet18 | 224x224x3 | 11,689,512 |" in out
    assert "bottleneck block, 256-d" in out


def test_profile_cli_rejects_unknown_model():
    result = run_cli(["--models", "resnet7"], module="keras_resnet.profile", timeout=120)
    assert result.returncode == 2
    assert "--models" in result.stderr and "resnet7" in result.stderr
