"""Reading SavedModel, TF1 Hub and Keras modules from their protobufs, without TensorFlow.

``inspect_module`` reports a module's signatures, call specs, variables and risky ops from the
bytes on disk, so ``hubcli inspect`` never imports TensorFlow.
"""
