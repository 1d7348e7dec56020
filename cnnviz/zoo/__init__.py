"""cnnviz's model zoo: classic CNNs written in this package, laid out like torchvision.

``list_models()`` names them (registration order: AlexNet, VGG, GoogLeNet, ResNet, CIFAR
ResNets, conv stacks), ``model_info(name)`` describes a model and its options, and
``get_model(name, device="meta", **config)`` builds one. The ImageNet models match torchvision's
state_dict keys, parameter counts and MACs exactly (checked against a stored manifest).
"""

# Importing the family modules registers their models.
from .alexnet import AlexNet, AlexNetPaper, alexnet, alexnet_paper
from .cifar import CifarResNet, resnet_cifar
from .googlenet import GoogLeNet, GoogLeNetOutputs, Inception, InceptionAux
from .registry import (
    ModelInfo,
    Option,
    Registry,
    ZooError,
    get_model,
    list_models,
    model_info,
    register_model,
)
from .resnet import SHORTCUTS, BasicBlock, Bottleneck, PadShortcut, ResNet, make_layer
from .stacks import ConvStack, conv_stack
from .vgg import VGG

__all__ = [
    "SHORTCUTS",
    "VGG",
    "AlexNet",
    "AlexNetPaper",
    "BasicBlock",
    "Bottleneck",
    "CifarResNet",
    "ConvStack",
    "GoogLeNet",
    "GoogLeNetOutputs",
    "Inception",
    "InceptionAux",
    "ModelInfo",
    "Option",
    "PadShortcut",
    "Registry",
    "ResNet",
    "ZooError",
    "alexnet",
    "alexnet_paper",
    "conv_stack",
    "get_model",
    "list_models",
    "make_layer",
    "model_info",
    "register_model",
    "resnet_cifar",
]
