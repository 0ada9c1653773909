"""Built-in plugins, registered like any other (see `armillary.plugins.DEFAULT_PLUGINS`)."""
