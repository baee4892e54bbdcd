"""The built-in poolers (registered by ``fw_builtins.models.plugin``)."""
