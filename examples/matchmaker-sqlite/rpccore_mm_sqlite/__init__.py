"""An example third-party matchmaker for rpccore (see the plugin author guide)."""
