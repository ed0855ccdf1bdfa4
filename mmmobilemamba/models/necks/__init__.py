"""mmdet necks (imported only when mmdet is installed)."""
