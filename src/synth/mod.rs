//! Heavy-rain renderer (training pairs, synthetic video, the built-in demo).
