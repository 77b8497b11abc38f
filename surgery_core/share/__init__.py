"""Share layer: figures, the markdown and HTML reports, the zip bundle and the snapshot store."""
