"""Training and ONNX export of derain's `full` mode networks: the full-resolution streak
network (streak.py, two sizes), the veil networks and the depth-guided refinement (model.py).

The networks and the differentiable pipeline around them mirror the Rust `full` mode
(src/nets/): the same residue channel and pixel unshuffle, the same residue-guided bank at the
same reduced working resolution, the same bilinear upsampling and physics inversion, so what
is trained here is what runs there. Training pairs are composed on the fly from rain layers
the Rust renderer draws (rain.py).
"""
