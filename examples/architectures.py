"""Course-material CNNs, each built from a namespace `nn` that provides Conv2d and MaxPool2d:
torch.nn for the reference, fastconv.nn for the model under test."""

import torch
from torch import nn as torch_nn


class LeNet5(torch_nn.Module):
    """LeCun et al. 1998 on 32x32 inputs: two 5x5 conv + 2x2 pool stages, three dense layers."""

    def __init__(self, nn, classes=10):
        super().__init__()
        self.features = torch_nn.Sequential(
            nn.Conv2d(1, 6, 5),
            torch_nn.Tanh(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            torch_nn.Tanh(),
            nn.MaxPool2d(2),
        )
        self.classifier = torch_nn.Sequential(
            torch_nn.Flatten(),
            torch_nn.Linear(16 * 5 * 5, 120),
            torch_nn.Tanh(),
            torch_nn.Linear(120, 84),
            torch_nn.Tanh(),
            torch_nn.Linear(84, classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


class FullyConvolutionalLeNet(torch_nn.Module):
    """LeNet-5 with its classifier as convolutions (5x5 over the 16x5x5 features, then 1x1): on a
    32x32 image it gives one score per class, on a larger image a spatial map of class scores.
    Written by hand: the reference that fastconv.fully_convolutional(lenet, (1, 1, 32, 32)), which
    the digits example uses, is checked against."""

    def __init__(self, nn, classes=10):
        super().__init__()
        self.features = LeNet5(nn, classes).features
        self.classifier = torch_nn.Sequential(
            nn.Conv2d(16, 120, 5),
            torch_nn.Tanh(),
            nn.Conv2d(120, 84, 1),
            torch_nn.Tanh(),
            nn.Conv2d(84, classes, 1),
        )

    @classmethod
    def from_lenet5(cls, lenet: LeNet5, nn):
        """The network that computes what `lenet` computes, on every 32x32 window: the same
        features, and its dense layers as convolutions with the same weights."""
        classes = lenet.classifier[-1].out_features
        model = cls(nn, classes).to(lenet.classifier[-1].weight.dtype)
        model.features.load_state_dict(lenet.features.state_dict())
        with torch.no_grad():
            for conv, linear in zip(model.classifier[::2], lenet.classifier[1::2]):
                conv.weight.copy_(
                    linear.weight.view_as(conv.weight)
                )  # Flatten's order is (C, H, W)
                conv.bias.copy_(linear.bias)
        return model

    def forward(self, x):
        return self.classifier(self.features(x))


class BasicBlock(torch_nn.Module):
    def __init__(self, nn, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = torch_nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = torch_nn.BatchNorm2d(planes)
        self.relu = torch_nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = torch_nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False), torch_nn.BatchNorm2d(planes)
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class ResNet18(torch_nn.Module):
    """He et al. 2016, the 18-layer ImageNet ResNet (the layout and state_dict keys of
    torchvision's resnet18)."""

    def __init__(self, nn, classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = torch_nn.BatchNorm2d(64)
        self.relu = torch_nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths = [64, 128, 256, 512]
        inplanes = 64
        for i, planes in enumerate(widths):
            stride = 1 if i == 0 else 2
            layer = torch_nn.Sequential(
                BasicBlock(nn, inplanes, planes, stride), BasicBlock(nn, planes, planes)
            )
            setattr(self, f"layer{i + 1}", layer)
            inplanes = planes
        self.avgpool = torch_nn.AdaptiveAvgPool2d(1)
        self.fc = torch_nn.Linear(512, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))
