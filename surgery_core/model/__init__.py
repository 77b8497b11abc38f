"""Model layer: checkpoint loading, prompts, the dual-path forward, the heatmap-method registry and refinement. The torch layer."""
