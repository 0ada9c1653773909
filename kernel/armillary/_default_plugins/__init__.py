"""Built-in plugins, registered like any other (see `armillary._plugins.DEFAULT_PLUGINS`)."""
