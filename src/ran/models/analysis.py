"""Read figures off a built network: depth, parameters, multiply-accumulates, and the soft masks (Fig. 1).

Every function accepts the network from `build_network`, the same loaded from `.keras`, or a bigger model that nests
it as a layer (the trainer's uint8 -> mean subtraction -> augmentation -> network wrapper).
"""

from __future__ import annotations

import math

import keras
import numpy as np

from ran.models.module import AttentionModule
from ran.models.residual import ResidualUnit


def find_network(model: keras.Model) -> keras.Model:
    """The network inside `model`: the (possibly nested) model whose own layers are residual units."""
    if any(isinstance(layer, ResidualUnit | AttentionModule) for layer in model.layers):
        return model
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            try:
                return find_network(layer)
            except ValueError:
                continue
    raise ValueError(f"model {model.name!r} contains no network built by ran.models.build_network")


def _walk(layer, trunk_only: bool):
    """Yield `layer` and, recursively, its sub-layers (only those on the trunk path if `trunk_only`)."""
    yield layer
    children = getattr(layer, "trunk_children" if trunk_only else "children", None)
    if children is None and trunk_only:
        children = getattr(layer, "children", None)
    for child in children() if children else []:
        yield from _walk(child, trunk_only)


def _weight_layers(model: keras.Model, trunk_only: bool):
    for top in find_network(model).layers:
        for layer in _walk(top, trunk_only):
            if isinstance(layer, keras.layers.Conv2D | keras.layers.Dense):
                yield layer


def network_depth(model: keras.Model) -> int:
    """Convolution and dense layers on the trunk path, counted in the built graph (soft-mask branches and
    projection shortcuts excluded, as in the paper's "36m + 20")."""
    return sum(1 for _ in _weight_layers(model, trunk_only=True))


def count_params(model: keras.Model) -> int:
    """Trainable parameters of the network (batch-norm moving statistics excluded, as in Table 6's counts)."""
    return sum(math.prod(weight.shape) for weight in find_network(model).trainable_weights)


def forward_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one forward pass for one image of the network's input size (32x32 on CIFAR).

    Counts convolutions (output positions x kernel area x input channels x output channels) and dense layers;
    batch normalisation, activations, pooling, up-sampling, additions and the mask products are elementwise and left
    out.
    """
    total = 0
    for layer in _weight_layers(model, trunk_only=False):
        input_shape = layer.get_build_config()["input_shape"]
        output_shape = layer.compute_output_shape(input_shape)
        kernel_area = math.prod(layer.kernel.shape[:-2]) if isinstance(layer, keras.layers.Conv2D) else 1
        total += math.prod(output_shape[1:]) * kernel_area * input_shape[-1]
    return total


def _network_input(model: keras.Model, network: keras.Model):
    """The symbolic tensor that feeds `network` inside `model`'s graph (`model.inputs` if they are the same)."""
    if network is model:
        return model.inputs[0]
    # Keras keeps no public handle on a nested model's call site; its inbound nodes hold the tensors it was fed.
    for node in network._inbound_nodes:
        tensor = node.input_tensors[0]
        try:
            keras.Model(model.inputs, tensor)
        except ValueError:
            continue
        return tensor
    raise ValueError(f"network {network.name!r} is not connected to the inputs of model {model.name!r}")


class _SoftMaskProbe(keras.layers.Layer):
    """Outputs the soft mask of `module` for the module's input; shares the module's weights (not for saving)."""

    def __init__(self, module: AttentionModule, **kwargs):
        super().__init__(name=f"{module.name}_soft_mask", **kwargs)
        self.module = module

    def call(self, inputs):
        return self.module.soft_mask(inputs, training=False)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


def soft_mask_model(model: keras.Model) -> keras.Model:
    """A model from `model`'s input to a dict `{"stage1_module1": M, ...}` of every attention module's soft mask.

    Mask shapes are (B, h, w, C) as applied to the trunk. Layers are shared with `model`, not copied.
    """
    network = find_network(model)
    modules = [layer for layer in network.layers if isinstance(layer, AttentionModule)]
    if not modules:
        raise ValueError(f"network {network.name!r} has no attention modules, so no soft masks")
    x = _network_input(model, network)
    masks = {}
    for layer in network.layers:  # build_network makes a chain: one layer after another
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, AttentionModule):
            masks[layer.name] = _SoftMaskProbe(layer)(x)
            if len(masks) == len(modules):
                break
        x = layer(x)
    return keras.Model(model.input, masks, name=f"{network.name}_soft_masks")


def soft_masks(model: keras.Model, images, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Channel-mean soft masks `{module name: (K, h, w)}` for `images` as `model` takes them (Fig. 1).

    Runs eagerly in batches: for the handful of images a figure needs, tracing a predict function costs far more.
    """
    mask_model = soft_mask_model(model)
    batches = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        # A model loaded from .keras may declare its single input as a one-element list; match it (no warning).
        outputs = mask_model([batch] if isinstance(mask_model.input, list) else batch, training=False)
        batches.append({name: keras.ops.convert_to_numpy(keras.ops.mean(m, axis=-1)) for name, m in outputs.items()})
    return {name: np.concatenate([b[name] for b in batches]).astype(np.float32) for name in mask_model.output}
