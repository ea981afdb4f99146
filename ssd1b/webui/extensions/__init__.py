"""One adapter per third-party extension: each probes that extension's version and functions in one place, patches
only while the extension is installed, and undoes everything on unload."""
