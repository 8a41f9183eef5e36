"""Reading SavedModel, TF1 Hub and Keras modules from their protobufs, without TensorFlow.

``inspect_module`` reports a module's signatures, call specs, variables and risky ops from the
bytes on disk, so ``hubcli inspect`` never imports TensorFlow. Nothing in this package does.

- ``formats``: is this a module, and which format (the one check the project uses)
- ``inspector``: ``inspect_module`` and ``content_digest``
- ``report``: ``ModuleInfo``, the report, and its ``hubcli.inspect/1`` JSON document
- ``protowire``: the protobuf wire-format reader; ``messages``: dtypes, shapes, NodeDefs, map entries
- ``metagraph``: meta graphs and the object graph; ``signatures`` and ``specs``: the interface
- ``variables``: variables and parameter counts; ``ops`` and ``opscan``: risky ops and op libraries
- ``keras_file``: ``.keras`` archives
"""
