"""Layer shapes of published networks, grouped into benchmark suites.

Every suite lists a network's layers in order, as the network has them; identical layers are then
merged into one case that remembers how often the network runs it (`count`), so a benchmark times
each distinct shape once and can still weigh it by how much of the network it is.

Shapes are per image (C x H x W in, K filters of R x S out); the batch comes from the suite.
"""

from collections import Counter
from dataclasses import dataclass, fields
from typing import Dict, List, Optional, Sequence, Tuple, Union


@dataclass(frozen=True)
class Conv:
    """One convolution: input C x H x W, K filters of C/groups x R x S."""

    name: str
    c: int
    h: int
    w: int
    k: int
    r: int
    s: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1
    bias: bool = False

    op = "conv2d"

    @property
    def out_h(self) -> int:
        return (self.h + 2 * self.padding - self.dilation * (self.r - 1) - 1) // self.stride + 1

    @property
    def out_w(self) -> int:
        return (self.w + 2 * self.padding - self.dilation * (self.s - 1) - 1) // self.stride + 1

    def forward_flops(self, batch: int) -> int:
        """Multiply-adds of the forward pass, counted as two FLOPs each (bias not counted)."""
        return (
            2 * batch * self.k * (self.c // self.groups) * self.r * self.s * self.out_h * self.out_w
        )

    def describe(self) -> str:
        extras = [f"s{self.stride}", f"p{self.padding}"]
        if self.dilation != 1:
            extras.append(f"d{self.dilation}")
        if self.groups != 1:
            extras.append("dw" if self.groups == self.c == self.k else f"g{self.groups}")
        return f"{self.c}x{self.h}x{self.w} > {self.k} {self.r}x{self.s} " + " ".join(extras)


@dataclass(frozen=True)
class Pool:
    """One max-pooling layer: a kernel x kernel window over C x H x W, moved by stride."""

    name: str
    c: int
    h: int
    w: int
    kernel: int
    stride: int
    padding: int = 0

    op = "max_pool2d"

    @property
    def out_h(self) -> int:
        return (self.h + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def out_w(self) -> int:
        return (self.w + 2 * self.padding - self.kernel) // self.stride + 1

    def describe(self) -> str:
        return (
            f"{self.c}x{self.h}x{self.w} {self.kernel}x{self.kernel}/{self.stride} p{self.padding}"
        )


Layer = Union[Conv, Pool]


def shape_key(layer: Layer) -> Tuple:
    """Everything but the name: two layers with the same key are the same benchmark case."""
    return tuple(getattr(layer, f.name) for f in fields(layer) if f.name != "name")


@dataclass(frozen=True)
class Case:
    """A distinct layer shape at one batch size, with how many times its network runs it."""

    suite: str
    layer: Layer
    batch: int
    count: int

    @property
    def label(self) -> str:
        return f"{self.layer.name} N={self.batch}"


SCOPES = ("quick", "default", "full")


@dataclass(frozen=True)
class Suite:
    name: str
    op: str
    source: str  # where the shapes come from
    layers: Tuple[Layer, ...]
    train_batch: Dict[str, int]  # per device; the inference batch is always 1
    # The layers the default run times (at both batches) and --quick (at batch 1): a few that
    # stand for the suite's kinds of layer. --full times every distinct layer.
    representative: Tuple[str, ...]

    @property
    def distinct_layers(self) -> int:
        return len(deduplicate(self.layers))

    def cases(self, device: str, scope: str = "full") -> List[Case]:
        """Distinct layers at the inference batch and then at the training batch, in network
        order: every one ("full"), the representative ones ("default"), or those at batch 1 only
        ("quick")."""
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}; choose from {SCOPES}")
        batches = [1] if scope == "quick" else [1, self.train_batch[device]]
        merged = deduplicate(self.layers)
        if scope != "full":
            merged = [
                (layer, count) for layer, count in merged if layer.name in self.representative
            ]
        return [
            Case(self.name, layer, batch, count) for batch in batches for layer, count in merged
        ]


def deduplicate(layers: Sequence[Layer]) -> List[Tuple[Layer, int]]:
    """Distinct layers in order of first appearance, each with its number of occurrences; a merged
    layer keeps the name of its first occurrence."""
    counts = Counter(shape_key(layer) for layer in layers)
    seen, merged = set(), []
    for layer in layers:
        key = shape_key(layer)
        if key not in seen:
            seen.add(key)
            merged.append((layer, counts[key]))
    return merged


def conv(
    name, c, size, k, kernel, stride=1, padding=None, dilation=1, groups=1, bias=False
) -> Conv:
    """A square convolution; padding defaults to 'same' for stride 1 (half the dilated kernel)."""
    if padding is None:
        padding = dilation * (kernel - 1) // 2
    return Conv(name, c, size, size, k, kernel, kernel, stride, padding, dilation, groups, bias)


def conv_out(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


# -------------------------------------------------------------------------------------- networks


def lenet5() -> List[Conv]:
    """LeCun et al. 1998 on 1x32x32 digits; C3 taken as fully connected to S2 (its sparse
    connection table is not expressible as one grouped convolution)."""
    return [
        conv("C1", 1, 32, 6, 5, padding=0, bias=True),
        conv("C3", 6, 14, 16, 5, padding=0, bias=True),
        conv("C5", 16, 5, 120, 5, padding=0, bias=True),
    ]


def alexnet() -> List[Conv]:
    """Krizhevsky et al. 2012, the original two-tower network on 3x227x227: conv2, conv4 and conv5
    are grouped (groups=2), as each tower saw only its own half of the channels."""
    return [
        conv("conv1", 3, 227, 96, 11, stride=4, padding=0, bias=True),
        conv("conv2", 96, 27, 256, 5, groups=2, bias=True),
        conv("conv3", 256, 13, 384, 3, bias=True),
        conv("conv4", 384, 13, 384, 3, groups=2, bias=True),
        conv("conv5", 384, 13, 256, 3, groups=2, bias=True),
    ]


VGG16_CONFIG = [
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    "M",
]


def vgg16() -> List[Conv]:
    """Simonyan & Zisserman 2015, configuration D on 3x224x224: 3x3 convolutions with bias."""
    layers, channels, size, stage, index = [], 3, 224, 1, 1
    for item in VGG16_CONFIG:
        if item == "M":
            size, stage, index = size // 2, stage + 1, 1
            continue
        layers.append(conv(f"conv{stage}_{index}", channels, size, item, 3, bias=True))
        channels, index = item, index + 1
    return layers


def resnet_stem() -> Conv:
    return conv("conv1", 3, 224, 64, 7, stride=2, padding=3)


def resnet18() -> List[Conv]:
    """He et al. 2016, the 18-layer network (basic blocks [2, 2, 2, 2]) on 3x224x224, no bias
    (batch norm follows every convolution); stride-2 1x1 projections start stages 2-4."""
    layers, channels, size = [resnet_stem()], 64, 56  # after the 3x3/2 max-pool
    for stage, (width, blocks) in enumerate([(64, 2), (128, 2), (256, 2), (512, 2)], start=1):
        for block in range(blocks):
            stride = 2 if block == 0 and stage > 1 else 1
            out = conv_out(size, 3, stride, 1)
            prefix = f"layer{stage}.{block}"
            layers.append(conv(f"{prefix}.conv1", channels, size, width, 3, stride=stride))
            layers.append(conv(f"{prefix}.conv2", width, out, width, 3))
            if stride != 1 or channels != width:
                layers.append(conv(f"{prefix}.downsample", channels, size, width, 1, stride=stride))
            channels, size = width, out
    return layers


def resnet50() -> List[Conv]:
    """He et al. 2016, the 50-layer network (bottleneck blocks [3, 4, 6, 3], expansion 4) on
    3x224x224 as torchvision builds it (ResNet v1.5: the stride sits on the 3x3 convolution; the
    projection shortcuts are 1x1 with stride 2 in stages 2-4)."""
    layers, channels, size = [resnet_stem()], 64, 56
    for stage, (width, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)], start=1):
        for block in range(blocks):
            stride = 2 if block == 0 and stage > 1 else 1
            out = conv_out(size, 3, stride, 1)
            prefix = f"layer{stage}.{block}"
            layers.append(conv(f"{prefix}.conv1", channels, size, width, 1))
            layers.append(conv(f"{prefix}.conv2", width, size, width, 3, stride=stride))
            layers.append(conv(f"{prefix}.conv3", width, out, 4 * width, 1))
            if block == 0:
                layers.append(
                    conv(f"{prefix}.downsample", channels, size, 4 * width, 1, stride=stride)
                )
            channels, size = 4 * width, out
    return layers


def resnext50_32x4d() -> List[Conv]:
    """Xie et al. 2017, ResNeXt-50 (32x4d) as torchvision builds it: resnet50's bottlenecks with a
    grouped 3x3 of 32 groups, twice as wide (128, 256, 512, 1024 channels)."""
    layers, channels, size = [resnet_stem()], 64, 56
    for stage, (planes, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)], start=1):
        width = planes * 2  # planes * (4 / 64) * 32
        for block in range(blocks):
            stride = 2 if block == 0 and stage > 1 else 1
            out = conv_out(size, 3, stride, 1)
            prefix = f"layer{stage}.{block}"
            layers.append(conv(f"{prefix}.conv1", channels, size, width, 1))
            layers.append(conv(f"{prefix}.conv2", width, size, width, 3, stride=stride, groups=32))
            layers.append(conv(f"{prefix}.conv3", width, out, 4 * planes, 1))
            if block == 0:
                layers.append(
                    conv(f"{prefix}.downsample", channels, size, 4 * planes, 1, stride=stride)
                )
            channels, size = 4 * planes, out
    return layers


def densenet121() -> List[Conv]:
    """Huang et al. 2017, DenseNet-121 as torchvision builds it (growth 32, bottleneck 4 x 32,
    blocks of 6, 12, 24, 16 layers): each layer a 1x1 convolution to 128 channels over everything
    concatenated so far (64 + 32 i: odd counts such as 96, 160, 224) and a 3x3 to 32 channels;
    each transition a 1x1 halving the channels (then a 2x2 average pool)."""
    layers, channels, size = [resnet_stem()], 64, 56
    for block, repeats in enumerate((6, 12, 24, 16), start=1):
        for i in range(repeats):
            prefix = f"denseblock{block}.layer{i + 1}"
            layers.append(conv(f"{prefix}.conv1", channels, size, 128, 1))
            layers.append(conv(f"{prefix}.conv2", 128, size, 32, 3))
            channels += 32
        if block < 4:
            layers.append(conv(f"transition{block}.conv", channels, size, channels // 2, 1))
            channels, size = channels // 2, size // 2
    return layers


def held_out() -> List[Conv]:
    """Classic layer kinds at sizes and channel counts no other suite has, timed at an odd batch:
    a check that speed-ups are not tied to the suites' shapes and batches."""
    return [
        conv("3x3.c48.s60", 48, 60, 48, 3),
        conv("3x3.c96.s30", 96, 30, 96, 3),
        conv("3x3.c192.s15", 192, 15, 160, 3),
        conv("3x3.c320.s9", 320, 9, 320, 3),
        conv("3x3.s2.c80", 80, 45, 112, 3, stride=2),
        conv("1x1.c200", 200, 20, 72, 1),
        conv("stem.5x5.s2", 3, 160, 40, 5, stride=2),
        conv("5x5.c48", 48, 27, 128, 5),
        conv("dilated.d2", 160, 25, 160, 3, dilation=2),
        conv("dilated.d3", 96, 31, 96, 3, dilation=3),
        conv("depthwise.c144", 144, 38, 144, 3, groups=144),
        conv("grouped.g32", 192, 21, 192, 3, groups=32),
    ]


# (expansion t, output channels c, repeats n, first stride s) of Sandler et al. 2018, table 2.
MOBILENET_V2_CONFIG = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def mobilenet_v2_depthwise() -> List[Conv]:
    """Sandler et al. 2018 on 3x224x224: the depthwise 3x3 convolution (groups = channels) of
    every inverted-residual block; the 1x1 expansions and projections are left out."""
    layers, channels, size = [], 32, 112  # after the stem's 3x3/2 convolution
    for block_index, (t, c, n, s) in enumerate(MOBILENET_V2_CONFIG):
        for repeat in range(n):
            stride = s if repeat == 0 else 1
            hidden = channels * t
            layers.append(
                conv(
                    f"block{block_index}.{repeat}.dw",
                    hidden,
                    size,
                    hidden,
                    3,
                    stride=stride,
                    groups=hidden,
                )
            )
            channels, size = c, conv_out(size, 3, stride, 1)
    return layers


def deeplab_dilated() -> List[Conv]:
    """Chen et al. 2017 (DeepLab-v3) on a 513x513 crop at output stride 16: the 3x3 convolutions
    of block4 (512 channels on 33x33), atrous with multi-grid (1, 2, 4) x rate 2, i.e. dilation
    2, 4 and 8 (padding = dilation keeps the size)."""
    return [
        conv(f"block4.unit{i + 1}.d{d}", 512, 33, 512, 3, dilation=d)
        for i, d in enumerate((2, 4, 8))
    ]


def max_pools() -> List[Pool]:
    """Max-pooling layers: ResNet's stem pool (He et al. 2016), VGG-16's 2x2/2 pools (Simonyan &
    Zisserman 2015) and AlexNet's overlapping 3x3/2 pools (Krizhevsky et al. 2012)."""
    vgg = []
    channels, size = 3, 224
    for item in VGG16_CONFIG:
        if item == "M":
            vgg.append(Pool(f"vgg16.pool{len(vgg) + 1}", channels, size, size, 2, 2))
            size //= 2
        else:
            channels = item
    return [
        Pool("resnet.maxpool", 64, 112, 112, 3, 2, 1),
        *vgg,
        Pool("alexnet.pool1", 96, 55, 55, 3, 2),
        Pool("alexnet.pool2", 256, 27, 27, 3, 2),
        Pool("alexnet.pool5", 256, 13, 13, 3, 2),
    ]


# Training batches keep the full CPU run (all suites, both batches) near 10-15 minutes on 2 cores
# (VGG-16 and DeepLab dominate it), and the default run (the representative layers) near 5; on a
# GPU they are closer to what the networks train with.
SUITES: Dict[str, Suite] = {
    suite.name: suite
    for suite in [
        Suite(
            "lenet5",
            "conv2d",
            "LeCun et al. 1998",
            tuple(lenet5()),
            {"cpu": 64, "cuda": 256},
            ("C1", "C3"),
        ),
        Suite(
            "alexnet",
            "conv2d",
            "Krizhevsky et al. 2012",
            tuple(alexnet()),
            {"cpu": 8, "cuda": 128},
            ("conv1", "conv2", "conv4"),
        ),
        Suite(
            "vgg16",
            "conv2d",
            "Simonyan & Zisserman 2015",
            tuple(vgg16()),
            {"cpu": 4, "cuda": 32},
            ("conv3_1", "conv5_1"),
        ),
        Suite(
            "resnet18",
            "conv2d",
            "He et al. 2016",
            tuple(resnet18()),
            {"cpu": 8, "cuda": 64},
            ("conv1", "layer1.0.conv1", "layer2.0.downsample", "layer4.0.conv2"),
        ),
        Suite(
            "resnet50",
            "conv2d",
            "He et al. 2016 (torchvision v1.5)",
            tuple(resnet50()),
            {"cpu": 8, "cuda": 64},
            ("layer3.1.conv1", "layer3.0.conv2", "layer4.0.downsample"),
        ),
        Suite(
            "resnext50",
            "conv2d",
            "Xie et al. 2017 (torchvision resnext50_32x4d)",
            tuple(resnext50_32x4d()),
            {"cpu": 8, "cuda": 64},
            ("layer1.0.conv2", "layer3.1.conv2"),
        ),
        Suite(
            "densenet121",
            "conv2d",
            "Huang et al. 2017 (torchvision densenet121)",
            tuple(densenet121()),
            {"cpu": 8, "cuda": 64},
            ("denseblock1.layer1.conv2", "denseblock3.layer5.conv1", "denseblock4.layer16.conv1"),
        ),
        Suite(
            "heldout",
            "conv2d",
            "fastconv: shapes and a batch (5) no other suite uses",
            tuple(held_out()),
            {"cpu": 5, "cuda": 40},
            ("3x3.c96.s30", "1x1.c200", "grouped.g32"),
        ),
        Suite(
            "mobilenet_v2_dw",
            "conv2d",
            "Sandler et al. 2018",
            tuple(mobilenet_v2_depthwise()),
            {"cpu": 8, "cuda": 64},
            ("block2.0.dw", "block4.1.dw"),
        ),
        Suite(
            "deeplab_dilated",
            "conv2d",
            "Chen et al. 2017 (DeepLab-v3)",
            tuple(deeplab_dilated()),
            {"cpu": 2, "cuda": 16},
            ("block4.unit3.d8",),
        ),
        Suite(
            "maxpool",
            "max_pool2d",
            "ResNet / VGG-16 / AlexNet",
            tuple(max_pools()),
            {"cpu": 8, "cuda": 64},
            ("resnet.maxpool", "vgg16.pool3", "alexnet.pool1"),
        ),
    ]
}


def select(names: Optional[Sequence[str]], op: Optional[str]) -> List[Suite]:
    """The suites named (all when none are), keeping only those of `op` when it is given."""
    unknown = [name for name in names or [] if name not in SUITES]
    if unknown:
        raise ValueError(f"unknown suite(s) {unknown}; choose from {sorted(SUITES)}")
    chosen = [SUITES[name] for name in names] if names else list(SUITES.values())
    return [suite for suite in chosen if op is None or suite.op == op]
