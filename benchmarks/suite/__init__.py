"""The benchmark suite behind ``python benchmarks/run.py``.

One concept per module:

- :mod:`.model`: figures of one scenario (rpccore beside its peers) as plain data;
- :mod:`.guard`: the targets of the driver issues and the verdicts on them;
- :mod:`.output`: the terminal table, Markdown/reST tables and JSON results;
- :mod:`.chart`: the PNG chart (matplotlib, Agg backend);
- :mod:`.progress`: a plain progress bar on stderr;
- :mod:`.workload`: rpccore through the public API, the same for every driver;
- :mod:`.cells`: how each driver's client and server ``RPC`` objects are built;
- :mod:`.peers`: the raw clients and oslo.messaging doing the same work (adapting
  the focused scripts ``benchmarks/bench_*.py``);
- :mod:`.raw_fanout`, :mod:`.raw_proton`: peers those scripts do not have;
- :mod:`.scenarios`: which scenarios run per driver, interleaved with peers;
- :mod:`.child`: a server in a separate process (cross-process scenarios);
- :mod:`.scale`: many zmq servers in the redis matchmaker, many rabbit servers.

Only :mod:`.model`, :mod:`.guard`, :mod:`.output` and :mod:`.progress` are
pure (no backend, no third-party import): the unit tests cover those.
"""
