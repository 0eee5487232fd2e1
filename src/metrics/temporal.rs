//! Temporal consistency of derained frame sequences (flicker where the ground truth is static).
