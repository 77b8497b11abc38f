"""Run layer: the hashed run configuration, the run store, the heatmap engine, the Run facade that computes products on demand, torchrun sharding, Explore."""
