"""fastconv.summary against values worked out by hand (in the comments) for LeNet-5 and
ResNet-18."""

import pytest
import torch
from torch import nn

import fastconv
from architectures import FullyConvolutionalLeNet, LeNet5, ResNet18

FLOAT = 4  # bytes per float32


def field(row):
    f = row.receptive_field
    assert f.size[0] == f.size[1] and f.jump[0] == f.jump[1] and f.start[0] == f.start[1]
    return f.size[0], f.jump[0], f.start[0]


def test_lenet5():
    s = fastconv.summary(LeNet5(fastconv.nn), (1, 1, 32, 32), optimizer="adam")
    assert [row.name for row in s.rows] == [f"features.{i}" for i in range(6)] + [
        f"classifier.{i}" for i in range(6)
    ]

    conv1 = s.layer("features.0")  # 1 -> 6 channels, 5x5, on 32x32: 28x28 outputs
    assert conv1.type == "Conv2d" and conv1.output_shape == ((1, 6, 28, 28),)
    assert conv1.parameters == 6 * 1 * 5 * 5 + 6 == 156
    # 6 * 28 * 28 = 4704 outputs, each 25 multiply-adds (2 FLOPs each) and a bias addition
    assert conv1.flops == 2 * 6 * 25 * 784 + 4704 == 239_904
    assert conv1.output_bytes == 4704 * FLOAT
    # a 5x5 window of the input, one pixel apart; the first is centred on pixel 2
    assert field(conv1) == (5, 1, 2)
    assert field(s.layer("features.1")) == (5, 1, 2)  # tanh changes nothing
    # 2x2 pool, stride 2: one more pixel, jump 2; the first window spans conv outputs 0 and 1
    pool1 = s.layer("features.2")
    assert pool1.output_shape == ((1, 6, 14, 14),) and pool1.flops == 0
    assert field(pool1) == (6, 2, 2.5)
    conv2 = s.layer("features.3")  # 6 -> 16, 5x5 on 14x14: 10x10; each step is 2 input pixels
    assert conv2.output_shape == ((1, 16, 10, 10),)
    assert conv2.parameters == 16 * 6 * 25 + 16 == 2416
    assert conv2.flops == 2 * 16 * 10 * 10 * (6 * 25) + 16 * 100 == 481_600
    assert field(conv2) == (6 + 4 * 2, 2, 2.5 + 2 * 2)
    assert field(s.layer("features.5")) == (14 + 1 * 2, 4, 6.5 + 0.5 * 2)
    fc1 = s.layer("classifier.1")  # 400 -> 120
    assert fc1.parameters == 400 * 120 + 120 and fc1.flops == 2 * 400 * 120 + 120
    assert fc1.receptive_field is None  # after flattening there is no spatial field

    assert (
        s.parameters
        == s.trainable_parameters
        == 156 + 2416 + 48_120 + (120 * 84 + 84) + (84 * 10 + 10)
        == 61_706
    )
    assert (
        s.flops == 239_904 + 481_600 + 96_120 + (2 * 120 * 84 + 84) + (2 * 84 * 10 + 10) == 839_558
    )
    assert s.parameter_bytes == s.gradient_bytes == 61_706 * FLOAT and s.buffer_bytes == 0
    assert s.optimizer_bytes == 2 * 61_706 * FLOAT  # adam: two moments per parameter
    # kept for backward: the input and every layer's output, the flattened view counted once
    outputs = [32 * 32, 4704, 4704, 6 * 14 * 14, 1600, 1600, 400, 120, 120, 84, 84, 10]
    assert s.activation_bytes == sum(outputs) * FLOAT == 62_504
    assert s.training_bytes == 4 * 61_706 * FLOAT + 62_504

    batch = fastconv.summary(LeNet5(fastconv.nn), (8, 1, 32, 32))  # all per-image quantities x8
    assert batch.flops == 8 * s.flops and batch.activation_bytes == 8 * s.activation_bytes
    assert batch.optimizer_bytes == 0  # plain sgd keeps no state


def test_fully_convolutional_lenet_sees_one_digit_per_class_score():
    # On three digits side by side (32x96) every class score is computed from a 32x32 window,
    # 4 pixels to the right of the previous one: the first is centred at (15.5, 15.5).
    s = fastconv.summary(FullyConvolutionalLeNet(fastconv.nn), (1, 1, 32, 96))
    scores = s.rows[-1]
    assert scores.output_shape == ((1, 10, 1, 17),)  # (96 - 32) / 4 + 1 positions
    assert field(scores) == (32, 4, 15.5)


def test_resnet18_at_224():
    with torch.device("meta"):  # shapes only: nothing is allocated
        model = ResNet18(fastconv.nn)
    s = fastconv.summary(model, (1, 3, 224, 224))

    conv1 = s.layer("conv1")  # 3 -> 64, 7x7, stride 2, padding 3: (224 + 6 - 7) // 2 + 1 = 112
    assert conv1.output_shape == ((1, 64, 112, 112),)
    assert conv1.parameters == 64 * 3 * 7 * 7 == 9408  # no bias
    assert conv1.flops == 2 * 9408 * 112 * 112 == 236_027_904
    assert conv1.output_bytes == 64 * 112 * 112 * FLOAT
    assert field(conv1) == (7, 2, 0)  # padding 3 centres the first window on pixel 0
    maxpool = s.layer("maxpool")  # 3x3, stride 2: 7 + 2 * 2 pixels
    assert maxpool.output_shape == ((1, 64, 56, 56),)
    assert field(maxpool) == (11, 4, 0)
    conv = s.layer("layer1.0.conv1")  # 64 -> 64, 3x3 on 56x56
    assert conv.parameters == 64 * 64 * 9 == 36_864 and conv.flops == 2 * 36_864 * 56 * 56
    assert field(conv) == (11 + 2 * 4, 4, 0)
    # layer1's four 3x3 convolutions grow the field to 11 + 4 * 8 = 43. In layer2.0 the main path
    # grows it further, while the 1x1 shortcut keeps 43: the sum takes the main path's 67.
    assert field(s.layer("layer2.0.conv1")) == (43 + 2 * 4, 8, 0)
    assert field(s.layer("layer2.0.conv2")) == (51 + 2 * 8, 8, 0)
    assert field(s.layer("layer2.0.downsample.0")) == (43, 8, 0)
    assert field(s.layer("layer2.1.conv1")) == (67 + 2 * 8, 8, 0)
    assert field(s.layer("layer2.1.conv2")) == (83 + 2 * 8, 8, 0)
    # Each 3x3 convolution adds twice its input's jump: layer3.0.conv1 2 * 8, the other three in
    # layer3 2 * 16, layer4.0.conv1 2 * 16, the other three 2 * 32: ResNet-18's well-known 435.
    last = [row for row in s.rows if row.name == "layer4.1.conv2"][0]
    assert field(last) == (99 + 2 * 8 + 3 * 2 * 16 + 2 * 16 + 3 * 2 * 32, 32, 0) == (435, 32, 0)
    assert s.layer("fc").receptive_field is None  # after global pooling

    assert s.parameters == 11_689_512  # torchvision's published count for resnet18
    assert s.parameter_bytes == 11_689_512 * FLOAT
    # batch norm: running mean and variance per channel (4800 channels over 20 layers) and an
    # int64 batch counter per layer
    channels = 64 + 4 * 64 + (4 * 128 + 128) + (4 * 256 + 256) + (4 * 512 + 512)
    assert s.buffer_bytes == 2 * channels * FLOAT + 20 * 8 == 38_560


def test_padding_same_dilation_and_average_pooling():
    model = nn.Sequential(
        nn.Conv2d(1, 1, 3, padding="same", dilation=2), nn.AvgPool2d(3, 1, 1), nn.Conv2d(1, 1, 2, 2)
    )
    s = fastconv.summary(fastconv.convert(model), (1, 1, 16, 16))
    assert [field(row) for row in s.rows] == [
        (5, 1, 0),  # a dilated 3x3 spans 5 pixels; 'same' pads 2, centring it on pixel 0
        (5 + 2, 1, 0),
        (7 + 1, 2, 0.5),  # 2x2, stride 2, no padding: centred between pixels 0 and 1
    ]
    assert s.rows[0].flops == 2 * 9 * 16 * 16 + 16 * 16


def test_leaves_the_model_as_it_was():
    model = ResNet18(fastconv.nn).train()
    stats = model.bn1.running_mean.clone()
    fastconv.summary(model, (2, 3, 32, 32))
    assert model.training and torch.equal(model.bn1.running_mean, stats)
    assert not any(m._forward_hooks for m in model.modules())


def test_table_and_errors():
    text = str(fastconv.summary(LeNet5(fastconv.nn), (1, 1, 32, 32)))
    assert (
        "features.0    Conv2d     1x6x28x28      156  239,904     18.4 KiB   5     1      2" in text
    )
    assert "61,706 parameters" in text and "839,558 FLOPs" in text
    with pytest.raises(ValueError, match="optimizer must be one of"):
        fastconv.summary(LeNet5(fastconv.nn), (1, 1, 32, 32), optimizer="lbfgs")


class PoolUnpool(nn.Module):
    """Max-pooling and the unpooling that puts each maximum back where it came from."""

    def __init__(self, pool, unpool):
        super().__init__()
        self.pool, self.unpool = pool, unpool

    def forward(self, x):
        return self.unpool(*self.pool(x))


def one_dimensional_model():
    return nn.Sequential(
        nn.Conv1d(3, 8, 5, stride=2, padding=2),
        nn.MaxPool1d(3, stride=2, padding=1, dilation=2),
        nn.AvgPool1d(2),
        nn.LPPool1d(2, 3, stride=1),
        nn.ConvTranspose1d(8, 4, 4, stride=2, padding=1),
        PoolUnpool(nn.MaxPool1d(3, 2, return_indices=True), nn.MaxUnpool1d(3, 2)),
    )


def test_one_dimensional_layers():
    s = fastconv.summary(one_dimensional_model(), (2, 3, 64))
    assert [row.name for row in s.rows] == ["0", "1", "2", "3", "4", "5.pool", "5.unpool"]
    lengths = [32, 15, 7, 5, 10, 4, 9]  # (64 + 4 - 5) // 2 + 1, (32 + 2 - 4 - 1) // 2 + 1, ...
    assert [row.output_shape[0] for row in s.rows] == [(2, 8, n) for n in lengths[:4]] + [
        (2, 4, n) for n in lengths[4:]
    ]
    conv = s.rows[0]
    assert conv.parameters == 8 * 3 * 5 + 8
    assert conv.flops == 2 * 8 * 32 * (
        2 * 3 * 5 + 1
    )  # each of 512 outputs: 15 multiply-adds and a bias
    transposed = s.rows[4]  # each of 2 * 8 * 5 inputs times 4 * 4 weights, and 2 * 4 * 10 biases
    assert transposed.parameters == 8 * 4 * 4 + 4
    assert transposed.flops == 2 * (2 * 8 * 5) * (4 * 4) + 2 * 4 * 10 == 2640
    assert [s.rows[i].flops for i in (1, 2, 3, 5, 6)] == [0] * 5  # pooling and unpooling count 0

    fields = [
        (row.receptive_field.size[0], row.receptive_field.jump[0], row.receptive_field.start[0])
        for row in s.rows
    ]
    assert fields == [
        (5, 2, 0),  # inputs -2..2 (padding 2)
        (5 + 4 * 2, 4, 0 + (2 - 1) * 2),  # taps -1, 1, 3 of the convolution (dilation 2, padding 1)
        (13 + 1 * 4, 8, 2 + 0.5 * 4),
        (17 + 2 * 8, 8, 4 + 1 * 8),  # LPPool: kernel 3, stride 1
        # Transposed, stride 2, padding 1: input i reaches outputs 2i - 1 .. 2i + 2, so output 0
        # comes from inputs -1 and 0 (fields [-12, 20] and [-4, 28]); the jump halves.
        (41, 4, 8),
        (41 + 2 * 4, 8, 8 + 1 * 4),
        # unpooling (kernel 3, stride 2): pooling windows -1 ([-20, 28]) and 0 ([-12, 36]) hold
        # output 0
        (57, 4, 8),
    ]
    line = next(line for line in str(s).splitlines() if line.startswith("4 "))
    assert line.split() == [
        "4",
        "ConvTranspose1d",
        "2x4x10",
        "132",
        "2,640",
        "320",
        "B",
        "41",
        "4",
        "8",
    ]


def transposed_model():
    return nn.Sequential(
        nn.ConvTranspose2d(2, 4, (3, 2), stride=2, dilation=(2, 1), groups=2, bias=False),
        nn.MaxPool2d(2),
        nn.LPPool2d(2, 3),
        PoolUnpool(nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2)),
    )


def test_transposed_two_dimensional_layers_and_lp_pooling():
    s = fastconv.summary(transposed_model(), (1, 2, 16, 16))
    # (16 - 1) * 2 + dilation * (kernel - 1) + 1: 35 rows (dilation 2), 32 columns
    assert [row.output_shape[0] for row in s.rows] == [
        (1, 4, 35, 32),
        (1, 4, 17, 16),
        (1, 4, 5, 5),
        (1, 4, 2, 2),
        (1, 4, 4, 4),
    ]
    transposed = s.rows[0]
    assert transposed.parameters == 2 * 2 * 3 * 2  # (in, out / groups, 3, 2), no bias
    assert (
        transposed.flops == 2 * (2 * 16 * 16) * (2 * 3 * 2) == 12_288
    )  # (out / groups) * kernel per input

    def fields(row):
        f = row.receptive_field
        return f.size, f.jump, f.start

    # Input i reaches output rows 2i, 2i + 2, 2i + 4 (dilation 2) and columns 2i, 2i + 1: the
    # first output row comes from input rows -2, -1, 0, the first column from column 0 alone.
    assert fields(s.rows[0]) == ((3, 1), (0.5, 0.5), (-1, 0))
    # Odd output rows are reached by no input; pooling 2x2 undoes the upsampling of the columns
    # exactly: each window's columns come from one input column.
    assert fields(s.rows[1]) == ((3, 1), (1, 1), (-1, 0))
    assert fields(s.rows[2]) == ((5, 3), (3, 3), (0, 1))  # 3x3 windows, stride 3
    assert fields(s.rows[3]) == ((8, 6), (6, 6), (1.5, 2.5))
    assert fields(s.rows[4]) == (
        (8, 6),
        (3, 3),
        (1.5, 2.5),
    )  # output 0 lies in pooling window 0 only
    assert all(row.flops == 0 for row in s.rows[1:])


class ResidualBlock1d(nn.Module):
    """x + conv(conv(x)): two 1-D fields meet in the addition, which keeps the larger."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(4, 4, 3, padding=1)
        self.conv2 = nn.Conv1d(4, 4, 5, padding=2)

    def forward(self, x):
        return x + self.conv2(self.conv1(x))


def test_one_dimensional_fields_merge():
    model = nn.Sequential(nn.Conv1d(2, 4, 3, stride=2), ResidualBlock1d(), nn.Identity())
    s = fastconv.summary(model, (1, 2, 33))
    fields = [(row.name, row.receptive_field.size, row.receptive_field.jump) for row in s.rows]
    # the sum takes the main path's 3 + 2 * 2 + 4 * 2 = 15 over the shortcut's 3
    assert fields == [
        ("0", (3,), (2,)),
        ("1.conv1", (7,), (2,)),
        ("1.conv2", (15,), (2,)),
        ("2", (15,), (2,)),
    ]


@pytest.mark.parametrize(
    "build, input_size",
    [
        (one_dimensional_model, (2, 3, 64)),
        (transposed_model, (1, 2, 16, 16)),
        (LeNet5, (1, 1, 32, 32)),
    ],
)
def test_converted_models_summarise_as_the_originals(build, input_size):
    # fastconv's modules subclass torch's, and may compute through other shapes (its 1-D
    # convolutions run on the 2-D kernels): the summary must not change.
    original = build(nn) if build is LeNet5 else build()
    rows = fastconv.summary(original, input_size).rows
    converted = fastconv.summary(fastconv.convert(original), input_size).rows
    assert [
        (r.name, r.output_shape, r.parameters, r.flops, r.receptive_field) for r in converted
    ] == [(r.name, r.output_shape, r.parameters, r.flops, r.receptive_field) for r in rows]
