"""A tiny factory network (3x3 conv stages, width and depth by scaler's rounding rules): the
base of the tests that exercise the engine, not the model, and the file the factory tests copy."""

from torch import nn
from scaler import round_filters, round_repeats

STAGES = ((24, 1, 2), (40, 2, 2))  # channels, repeats, stride of the first block


def conv(cin, cout, stride):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


def make(width, depth, num_classes):
    cin = round_filters(16, width)
    layers = [conv(3, cin, 2)]
    for channels, repeats, stride in STAGES:
        cout = round_filters(channels, width)
        for i in range(round_repeats(repeats, depth)):
            layers.append(conv(cin, cout, stride if i == 0 else 1))
            cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))
