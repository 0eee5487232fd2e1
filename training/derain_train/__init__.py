"""Training and ONNX export of derain's stage-1 and stage-2 networks.

The networks and the differentiable pipeline around them mirror the Rust `full` mode
(src/nets/): the same residue-guided bank, the same reduced working resolution, the same
bilinear upsampling and physics inversion, so what is trained here is what runs there.
"""
