"""The PP-OCR networks made cheaper to run, in memory, without changing what they compute.

paddle2onnx exports the PP-LCNetV3 blocks of PP-OCRv4 as chains of element-wise nodes with scalar
constants (the *learnable affine blocks*, and hard-swish spelt out) that onnxruntime 1.32's graph
optimiser leaves in place, converting its blocked channel layout out and back in around each.
On the CPU they cost nearly half as much as the convolutions (one thread, detector at 736x736:
206 ms of kernel time, 93 of them in convolutions). :func:`fused` rewrites three patterns, each
an identity of real arithmetic:

* a convolution followed by its *learnable affine block* (multiply by a scalar constant, then
  add one): folded into the convolution's weights and bias;
* hard-swish spelt out as ``x * clip(x + 3, 0, 6) / 6`` (four nodes): ``x * HardSigmoid(x)``
  with alpha 1/6 and beta 1/2, the same function in two nodes;
* any other affine block: folded into the convolution that alone reads it when that one is
  unpadded and 1x1 (``W (s x + b) + c = (s W) x + (c + b sum W)``; exact because no padding
  value goes through the affine), else written as one ``BatchNormalization`` node (per-channel
  scale ``s`` and shift ``b``, mean 0, variance 1, epsilon 0: the same arithmetic), which
  onnxruntime runs in its blocked channel layout instead of converting to and from it around
  two element-wise nodes.

The outputs differ from the unmodified graph's by float rounding only (about 1e-6 on the
detector's probability map). The weights are the installed package's, read from its files;
nothing here is stored or fetched.
"""

from __future__ import annotations

import numpy as np

#: What :func:`fused` does, as the text detection report states it with the model version.
DESCRIPTION = "affine blocks and hard-swish fused at load"


def fused(model_bytes: bytes) -> bytes:
    """The ONNX model ``model_bytes`` with the patterns of the module docstring rewritten."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    constants.update({n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in graph.node
                      if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"})
    readers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)

    def scalar(node) -> float | None:
        """The scalar constant operand of a binary node whose other operand is a tensor."""
        held = [constants[i] for i in node.input if i in constants]
        return float(held[0].ravel()[0]) if len(node.input) == 2 and len(held) == 1 and held[0].size == 1 else None

    def sole_reader(name: str, op_type: str):
        found = readers.get(name, [])
        return found[0] if len(found) == 1 and found[0].op_type == op_type and name not in outputs else None

    def tensor_input(node) -> str:
        return next(i for i in node.input if i not in constants)

    def affine_after(name: str):
        """The scalar ``Mul`` (and ``Add``) reading ``name``, the scale and the shift."""
        mul = sole_reader(name, "Mul")
        if mul is None or scalar(mul) is None:
            return None
        add = sole_reader(mul.output[0], "Add")
        shift = scalar(add) if add is not None else None
        return (mul, add, scalar(mul), shift) if shift is not None else (mul, None, scalar(mul), 0.0)

    def set_weights(conv, weights: np.ndarray, bias: np.ndarray) -> None:
        names = (f"fused_w.{len(graph.initializer)}", f"fused_b.{len(graph.initializer)}")
        constants.update(zip(names, (weights, bias)))
        graph.initializer.extend([numpy_helper.from_array(weights.astype(np.float32), names[0]),
                                  numpy_helper.from_array(bias.astype(np.float32), names[1])])
        source = conv.input[0]
        del conv.input[:]
        conv.input.extend([source, *names])

    def weights_of(conv) -> tuple[np.ndarray, np.ndarray] | None:
        if conv.input[1] not in constants or (len(conv.input) > 2 and conv.input[2] not in constants):
            return None
        w = constants[conv.input[1]]
        return w, constants[conv.input[2]] if len(conv.input) > 2 else np.zeros(w.shape[0], np.float32)

    outputs = {o.name for o in graph.output}
    inferred = onnx.shape_inference.infer_shapes(model).graph.value_info
    channels = {v.name: v.type.tensor_type.shape.dim[1].dim_value  # 0 where unknown
                for v in inferred if len(v.type.tensor_type.shape.dim) == 4
                and v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    dropped: set[int] = set()
    renamed: dict[str, str] = {}
    inserted: dict[int, list] = {}  # id of a dropped node -> the nodes that take its place
    for node in graph.node:
        if node.op_type == "Conv" and (affine := affine_after(node.output[0])) and (wb := weights_of(node)):
            mul, add, scale, shift = affine
            set_weights(node, wb[0] * scale, wb[1] * scale + shift)
            last = add if add is not None else mul
            dropped.update({id(mul), id(last)})
            renamed[last.output[0]] = node.output[0]
        elif node.op_type == "Add" and id(node) not in dropped and scalar(node) == 3.0:
            x = tensor_input(node)
            clip = sole_reader(node.output[0], "Clip")
            mul = sole_reader(clip.output[0], "Mul") if clip is not None else None
            div = sole_reader(mul.output[0], "Div") if mul is not None and x in mul.input else None
            bounds = [constants.get(i) for i in clip.input[1:]] if clip is not None else []
            if (div is None or div.input[1] not in constants or scalar(div) != 6.0
                    or [None if b is None else float(b) for b in bounds] != [0.0, 6.0]):
                continue
            gate = f"{div.output[0]}.hard_sigmoid"
            dropped.update({id(node), id(clip), id(mul), id(div)})
            inserted[id(div)] = [helper.make_node("HardSigmoid", [x], [gate], alpha=1 / 6, beta=0.5),
                                 helper.make_node("Mul", [x, gate], [div.output[0]])]
    for node in graph.node:  # the remaining affine blocks
        if node.op_type != "Mul" or id(node) in dropped or scalar(node) is None:
            continue
        add = sole_reader(node.output[0], "Add")
        after = add if add is not None and scalar(add) is not None else node
        scale, shift = scalar(node), scalar(add) if after is add else 0.0
        conv = sole_reader(after.output[0], "Conv")
        if conv is not None and (wb := weights_of(conv)) is not None and _unpadded_1x1(conv, wb[0]):
            set_weights(conv, wb[0] * scale, wb[1] + shift * wb[0].sum(axis=(1, 2, 3)))
            renamed[conv.input[0]] = tensor_input(node)
        elif count := channels.get(after.output[0]):
            names = [f"affine.{len(graph.initializer)}.{part}" for part in ("scale", "shift", "mean", "var")]
            graph.initializer.extend(numpy_helper.from_array(np.full(count, value, np.float32), name)
                                     for name, value in zip(names, (scale, shift, 0.0, 1.0)))
            inserted[id(after)] = [helper.make_node("BatchNormalization", [tensor_input(node), *names],
                                                    [after.output[0]], epsilon=0.0)]
        else:
            continue
        dropped.update({id(node), id(after)})
    nodes = []
    for node in graph.node:
        nodes += inserted.get(id(node), []) if id(node) in dropped else [node]
    for node in nodes:
        for k, name in enumerate(node.input):
            while name in renamed:
                name = renamed[name]
            node.input[k] = name
    used = {name for node in nodes for name in node.input} | outputs
    nodes = [n for n in nodes if n.op_type != "Constant" or n.output[0] in used]
    del graph.node[:]
    graph.node.extend(nodes)
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return model.SerializeToString()


def _unpadded_1x1(conv, weights: np.ndarray) -> bool:
    from onnx import helper
    attributes = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
    return (weights.shape[2:] == (1, 1) and not any(attributes.get("pads", [0]))
            and attributes.get("auto_pad", b"NOTSET") in (b"NOTSET", b"VALID"))
