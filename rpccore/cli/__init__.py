"""The ``rpccore`` command line."""
